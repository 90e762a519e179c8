"""Runs store work off the event loop (design.md rule 8).

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
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from pushmail.metrics.series import STORE_ERRORS
from pushmail.store.interfaces import Store

T = TypeVar("T")
Done = Callable[[Any, BaseException | None], None]
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop | None, Done]


class _JobThread:
    """One thread that runs jobs in order, each answering through a callback.

    Why not ``loop.run_in_executor`` on a one-thread pool: every trip made a
    ``concurrent.futures.Future``, wrapped it in an asyncio future and chained the
    two with callbacks and locks; in a connect storm (three or four trips per
    session) that machinery was a quarter of the server's Python time (py-spy). Here
    a trip is one queue put, the job, and one ``call_soon_threadsafe``; ``submit``
    does without even a future, for callers that are callbacks themselves."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._errors = STORE_ERRORS.labels(name)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, loop, done = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the waiter, as an executor would
                error = exc
                self._errors.inc()
            if loop is None:
                done(result, error)
            else:
                # A closed loop (RuntimeError) has nobody waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(done, result, error)

    def submit(self, fn: Callable[[], Any], done: Done) -> None:
        """Queue ``fn``; ``done(result, exception)`` is then called on this loop."""
        self._jobs.put((fn, asyncio.get_running_loop(), done))

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn``; its result (or exception) arrives in the returned future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, loop, functools.partial(_settle, future)))
        return future

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread and wait for it (for code not on a loop)."""
        waiter: Future[T] = Future()

        def done(result: Any, exc: BaseException | None) -> None:
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(result)

        self._jobs.put((fn, None, done))
        return waiter.result()

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """On the loop: complete the future, unless its waiter has given up."""
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class StoreRunner:
    """Owns the store threads. ``open_store`` is called on each thread, once."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._writer = _JobThread("store")
        self._reader = _JobThread("store-read")
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
        return self._writer.call(lambda: fn(self._get()))

    async def run(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the store thread without blocking the loop."""
        return await self._writer.run(lambda: fn(self._get()))

    def submit(self, fn: Callable[[Store], Any], done: Done) -> None:
        """As ``run``, for a caller that is a callback: ``done(result, exception)``
        is called on the loop, with no task or future made for the trip."""
        self._writer.submit(lambda: fn(self._get()), done)

    def submit_read(self, fn: Callable[[Store], Any], done: Done) -> None:
        """As ``read``, answering through ``done`` like ``submit``."""
        self._reader.submit(lambda: fn(self._get_read()), done)

    async def read(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the reader thread: for jobs that only read, or write
        no more than a little non-durable bookkeeping (``claim_recent``)."""
        return await self._reader.run(lambda: fn(self._get_read()))

    def close(self) -> None:
        def _close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        def _close_read() -> None:
            if self._read_store is not None:
                self._read_store.close()
                self._read_store = None

        self._reader.call(_close_read)
        self._reader.stop()
        self._writer.call(_close)
        self._writer.stop()
