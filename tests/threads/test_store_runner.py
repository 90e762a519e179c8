"""The store threads: jobs run in order on their own thread, results and exceptions
come back to the loop, and a waiter that gives up does not stop the thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pushmail.store.interfaces import Store
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner


def test_jobs_results_exceptions_and_threads(tmp_path: Path) -> None:
    runner = StoreRunner(lambda: SqliteStore(tmp_path / "db.sqlite3"))
    loop_thread = threading.get_ident()

    async def main() -> None:
        seen: list[int] = []

        def job(i: int) -> int:
            assert threading.get_ident() != loop_thread
            seen.append(i)
            return i * i

        results = await asyncio.gather(*(runner.run(lambda st, i=i: job(i)) for i in range(50)))
        assert results == [i * i for i in range(50)] and seen == list(range(50))

        def fails(store: Store) -> None:
            raise LookupError("from the store thread")

        with pytest.raises(LookupError, match="store thread"):
            await runner.run(fails)
        with pytest.raises(LookupError):
            await runner.read(fails)

        writer = await runner.run(lambda st: threading.get_ident())
        reader = await runner.read(lambda st: threading.get_ident())
        assert writer != reader

        release = threading.Event()
        slow = asyncio.ensure_future(runner.run(lambda st: release.wait(5)))
        await asyncio.sleep(0.01)
        slow.cancel()  # the waiter gives up while the job runs
        release.set()
        user = await runner.run(lambda st: st.create_user("a@example.org", "{PLAIN}x"))
        assert (await runner.read(lambda st: st.get_user("a@example.org"))) == user

    asyncio.run(main())
    assert runner.call_sync(lambda st: st.get_user("a@example.org")) is not None
    runner.close()
