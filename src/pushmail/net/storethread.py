"""Runs store work off the event loop (DESIGN rule 8).

Each worker process owns one store connection, used only by one dedicated thread.
Everything that touches SQLite (a command's store calls, a delivery) is sent there as
a plain function, so the event loop never waits on disk. One thread also serialises
the process's writers, which SQLite needs anyway.

A second thread with its own connection takes ``read`` jobs: the checks that tell
idling sessions of new mail. Under a burst of deliveries the writer thread spends
its time waiting for the file's write lock and for fsync; WAL lets a reader run
beside that, so a wake-up never queues behind another user's delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pushmail.store.interfaces import Store

T = TypeVar("T")


class StoreRunner:
    """Owns the store threads. ``open_store`` is called on each thread, once."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-read")
        self._store: Store | None = None
        self._read_store: Store | None = None
        self._open_store = open_store

    def _get(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _get_read(self) -> Store:
        if self._read_store is None:
            self._read_store = self._open_store()
        return self._read_store

    def call_sync(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the store thread and wait (for code not on a loop)."""
        return self._executor.submit(lambda: fn(self._get())).result()

    async def run(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the store thread without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._get()))

    async def read(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the reader thread: for jobs that only read, or write
        no more than a little non-durable bookkeeping (``claim_recent``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, lambda: fn(self._get_read()))

    def close(self) -> None:
        def _close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        def _close_read() -> None:
            if self._read_store is not None:
                self._read_store.close()
                self._read_store = None

        self._reader.submit(_close_read).result()
        self._reader.shutdown(wait=True)
        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
