"""The cost of a simple insert and a select by key, per PostgreSQL driver, and of the
store calls a session makes, per store backend: the measurement behind the driver
choice in docs/design.md ("The PostgreSQL store").

Prints one JSON line: microseconds per operation (median of ``--rounds`` rounds of
``--n`` operations each), one after another on one thread, as a store thread runs
them. Sides:

- ``psycopg``: psycopg 3, one autocommit connection, statements prepared by the
  driver after a few uses (as the store's connections do);
- ``psycopg_pool``: the same, but borrowing the connection from a pool per
  operation, as ``PostgresStore`` does per call;
- ``asyncpg`` (when installed): one connection, each operation awaited in turn on
  an event loop (the store would have to run such a loop on its thread);
- ``store_pg`` / ``store_sqlite``: ``append`` (durable) and ``select_info`` of a
  10-message mailbox through ``PostgresStore`` and ``SqliteStore``;
- ``parallel_pg`` / ``parallel_sqlite``: deliveries per second with ``--threads``
  threads, each with a store object of its own (as nodes or worker processes have)
  appending to a mailbox of its own: SQLite's writers take turns at one file lock,
  PostgreSQL's commit side by side (and share WAL flushes).

    .venv/bin/python bench/pg_driver.py --url postgresql://postgres@127.0.0.1/postgres

Creates a scratch database on that server and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from pushmail.store.factory import open_store, sqlite_url
from pushmail.store.interfaces import MessageCache, NewMessage, Store

_TABLE = "CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL)"
_INSERT = "INSERT INTO bench (id, payload) VALUES (%s, %s)"
_SELECT = "SELECT payload FROM bench WHERE id = %s"


def _median_us(rounds: int, n: int, op: Callable[[int], object]) -> float:
    """Median over rounds of the mean microseconds per call of ``op(i)``."""
    per_round = []
    counter = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            counter += 1
            op(counter)
        per_round.append((time.perf_counter() - start) / n * 1e6)
    return round(statistics.median(per_round), 1)


def bench_psycopg(url: str, rounds: int, n: int, base: int) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            "insert_us": _median_us(
                rounds, n, lambda i: conn.execute(_INSERT, (base + i, "x" * 100))
            ),
            "select_us": _median_us(
                rounds, n, lambda i: conn.execute(_SELECT, (base + i % n + 1,)).fetchone()
            ),
        }


def bench_pool(url: str, rounds: int, n: int, base: int) -> dict[str, float]:
    with ConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:

        def insert(i: int) -> None:
            with pool.connection() as conn:
                conn.execute(_INSERT, (base + i, "x" * 100))

        def select(i: int) -> None:
            with pool.connection() as conn:
                conn.execute(_SELECT, (base + i % n + 1,)).fetchone()

        return {
            "insert_us": _median_us(rounds, n, insert),
            "select_us": _median_us(rounds, n, select),
        }


def bench_asyncpg(url: str, rounds: int, n: int, base: int) -> dict[str, float] | dict[str, str]:
    try:
        import asyncpg  # type: ignore[import-not-found]
    except ImportError:
        return {"error": "asyncpg is not installed"}

    async def run() -> dict[str, float]:
        conn = await asyncpg.connect(url)
        loop = asyncio.get_running_loop()
        insert = await conn.prepare("INSERT INTO bench (id, payload) VALUES ($1, $2)")
        select = await conn.prepare("SELECT payload FROM bench WHERE id = $1")
        out: dict[str, float] = {}
        for name, stmt, args in (
            ("insert_us", insert, lambda i: (base + i, "x" * 100)),
            ("select_us", select, lambda i: (base + i % n + 1,)),
        ):
            per_round = []
            counter = 0
            for _ in range(rounds):
                start = loop.time()
                for _ in range(n):
                    counter += 1
                    await stmt.fetch(*args(counter))
                per_round.append((loop.time() - start) / n * 1e6)
            out[name] = round(statistics.median(per_round), 1)
        await conn.close()
        return out

    return asyncio.run(run())


def bench_store(store: Store, rounds: int, n: int) -> dict[str, float]:
    owner = store.create_user(f"bench-{uuid.uuid4().hex}@example.org", "h")
    box = store.get_mailbox(owner.id, "INBOX")
    assert box is not None
    cache = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')
    for i in range(10):
        store.append(box.id, NewMessage(f"Subject: seed {i}\r\n\r\n.\r\n".encode(), cache))

    def append(i: int) -> None:
        store.append(box.id, NewMessage(f"Subject: {i}\r\n\r\n.\r\n".encode(), cache))

    out = {
        "select_info_us": _median_us(rounds, n, lambda i: store.select_info(box.id)),
        "append_us": _median_us(rounds, n, append),
    }
    store.close()
    return out


def bench_parallel(open_store: Callable[[], Store], threads: int, n: int) -> dict[str, float]:
    """Each thread opens its own store (SQLite objects stay on their thread) and
    user, then all start delivering at once; deliveries per second over all."""
    cache = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')
    ready = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def work(i: int) -> None:
        store = open_store()
        try:
            owner = store.create_user(f"par-{i}-{uuid.uuid4().hex}@example.org", "h")
            box = store.get_mailbox(owner.id, "INBOX")
            assert box is not None
            ready.wait()
            for k in range(n):
                raw = f"Subject: {i} {k}\r\n\r\n.\r\n".encode()
                store.append(box.id, NewMessage(raw, cache))
        except BaseException as exc:
            failures.append(exc)
            ready.abort()
        finally:
            store.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise failures[0]
    return {"threads": threads, "deliveries_per_s": round(threads * n / elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    name = f"pushmail_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(args.url)._replace(path="/" + name))
    figures: dict[str, object] = {"n": args.n, "rounds": args.rounds}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_TABLE)
        total = args.n * args.rounds
        figures["psycopg"] = bench_psycopg(url, args.rounds, args.n, 0)
        figures["psycopg_pool"] = bench_pool(url, args.rounds, args.n, total)
        figures["asyncpg"] = bench_asyncpg(url, args.rounds, args.n, 2 * total)
        figures["store_pg"] = bench_store(open_store(url), args.rounds, args.n // 5)
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = open_store(sqlite_url(Path(tmp) / "store.sqlite3"))
            figures["store_sqlite"] = bench_store(sqlite, args.rounds, args.n // 5)
            figures["parallel_sqlite"] = bench_parallel(
                lambda: open_store(sqlite_url(Path(tmp) / "store.sqlite3")),
                args.threads,
                args.n // 2,
            )
        # The threads' stores share the process's pool (POOL_MAX_SIZE connections).
        figures["parallel_pg"] = bench_parallel(lambda: open_store(url), args.threads, args.n // 2)
    finally:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
