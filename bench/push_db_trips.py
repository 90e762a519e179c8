"""Trips to the push database's thread: how many per second the event loop makes,
one at a time (the engine's pattern: await one look-up, then the next) and many at
once (a burst of web API calls), with a trivial indexed read as the job.

    .venv/bin/python bench/push_db_trips.py [--trips 20000] [--concurrent 100]
        [--db-module old_db.py]

``--db-module`` loads ``DbThread`` from another copy of ``push/db.py`` (for a
before/after comparison: ``git show <rev>:src/pushmail/push/db.py > old_db.py``).

Prints one JSON line. Loopback-free: a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pushmail.push import db as pushdb


def _open_thread(module: Any, path: Path) -> Any:
    """A ``DbThread`` on ``path`` (before the push database had a factory it took
    the path; now it takes an opener)."""
    params = list(inspect.signature(module.DbThread.__init__).parameters)
    if params[1] == "path":
        return module.DbThread(path)
    from pushmail.push.db_open import open_push_db

    return module.DbThread(lambda: open_push_db(f"sqlite://{path}"))


def _load(file: str | None) -> Any:
    if file is None:
        return pushdb
    spec = importlib.util.spec_from_file_location("old_push_db", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def _measure(module: Any, path: Path, trips: int, concurrent: int) -> dict[str, float]:
    thread = _open_thread(module, path)
    try:
        await thread.run(lambda db: db.cursor(1, 1))  # warm up: the thread and the file
        start = time.perf_counter()
        for _ in range(trips):
            await thread.run(lambda db: db.cursor(1, 1))
        serial = trips / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(trips // concurrent):
            await asyncio.gather(
                *(thread.run(lambda db: db.cursor(1, 1)) for _ in range(concurrent))
            )
        burst = (trips // concurrent * concurrent) / (time.perf_counter() - start)
    finally:
        thread.close()
    return {"serial_trips_per_s": round(serial), "burst_trips_per_s": round(burst)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trips", type=int, default=20_000)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--db-module", help="a copy of push/db.py to take DbThread from")
    args = parser.parse_args()
    module = _load(args.db_module)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "push.sqlite3"
        result = asyncio.run(_measure(module, path, args.trips, args.concurrent))
    which = "current" if args.db_module is None else args.db_module
    print(json.dumps({"bench": "push_db_trips", "db": which, "trips": args.trips, **result}))


if __name__ == "__main__":
    main()
