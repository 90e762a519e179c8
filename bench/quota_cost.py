"""What the quota check costs a delivery (issue 18): µs per one-message ``deliver``
on SQLite and PostgreSQL, for a user without a quota and one with a quota (one that
never fills). Run it on this tree and on a tree from before quotas (``--src``) to
compare; the quota row only exists where the store has ``set_quota``.

    .venv/bin/python bench/quota_cost.py [--n 400] [--repeat 3] [--src OLD/src]
    .venv/bin/python bench/quota_cost.py --ablation [--n 300] [--repeat 7]

``--ablation`` measures in ONE process, alternating round by round: the store with
the gate and the usage triggers switched off (as before quotas), then on for a user
without a quota and for one with a quota; on a loaded machine this is the figure to
trust, since the noise hits all three alike.

SQLite runs in /dev/shm when it exists and is timed in process CPU time (the fsync at
COMMIT and other processes on a shared machine would drown the check); PostgreSQL on
127.0.0.1:5432 in a scratch database with ``synchronous_commit = off``, wall time.
Each figure is the best of --repeat runs.
Only loopback; bounded by --n and --repeat.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import cast


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", help="the src/ directory of the pushmail to measure")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--ablation", action="store_true")
    args = ap.parse_args()
    if args.ablation:
        ablation(args)
        return
    if args.src:
        sys.path.insert(0, args.src)
    from pushmail.store.factory import open_store
    from pushmail.store.interfaces import MessageCache, NewMessage

    cache = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')

    def run(store: object, label: str) -> None:
        for quota in (False, True):
            if quota and not hasattr(store, "set_quota"):
                continue
            addr = f"{uuid.uuid4().hex[:8]}@bench.test"
            user = store.create_user(addr, "x")  # type: ignore[attr-defined]
            if quota:
                from pushmail.store.interfaces import Quota

                store.set_quota(user.id, Quota(10**12, 10**9))  # type: ignore[attr-defined]
            box = store.get_mailbox(user.id, "INBOX").id  # type: ignore[attr-defined]
            best = float("inf")
            clock = time.process_time if label == "sqlite" else time.perf_counter
            for r in range(args.repeat):
                msgs = [
                    NewMessage(f"Subject: {r} {i}\r\n\r\nbody\r\n".encode(), cache)
                    for i in range(args.n)
                ]
                t0 = clock()
                for m in msgs:
                    store.deliver([(box, m)])  # type: ignore[attr-defined]
                best = min(best, (clock() - t0) / args.n)
            print(f"{label:10} quota={'yes' if quota else 'no ':3} {best * 1e6:8.1f} µs/delivery")

    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm, prefix="pm-quota-cost-") as d:
        store = open_store(f"sqlite://{Path(d) / 'store.sqlite3'}")
        run(store, "sqlite")
        store.close()
    try:
        import psycopg
    except ImportError:
        return
    name = f"pm_quota_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        # The WAL flush at COMMIT (milliseconds) would drown the check; this
        # scratch database only.
        admin.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    try:
        pg = open_store(args.pg.rsplit("/", 1)[0] + "/" + name)
        run(pg, "postgresql")
        pg.close()
    finally:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def ablation(args: argparse.Namespace) -> None:
    import psycopg

    from pushmail.store import pg_quota, sqlite
    from pushmail.store.factory import open_store
    from pushmail.store.interfaces import MessageCache, NewMessage, Quota

    cache = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')
    from pushmail.store.postgres import PostgresStore

    # The gate's entry points: SQLite's for deliveries, PostgreSQL's after the UPDATE
    # that allocates the UID (which also reads whether a quota row exists: that
    # sub-select stays in "off", so PostgreSQL's "off" is a little above the old code).
    real = {sqlite: sqlite.quota_admit, pg_quota: pg_quota.admit_owned}
    names = {sqlite: "quota_admit", pg_quota: "admit_owned"}

    def measure(store: object, box: int, clock: object, tag: str) -> float:
        msgs = [
            NewMessage(f"Subject: {tag} {i}\r\n\r\nb\r\n".encode(), cache) for i in range(args.n)
        ]
        t0 = clock()  # type: ignore[operator]
        for m in msgs:
            store.deliver([(box, m)])  # type: ignore[attr-defined]
        return (clock() - t0) / args.n  # type: ignore[operator, no-any-return]

    def run(store: object, module: object, label: str, clock: object, switch: object) -> None:
        boxes = {}
        for name in ("off", "no quota", "quota"):
            user = store.create_user(f"{uuid.uuid4().hex[:8]}@b.test", "x")  # type: ignore[attr-defined]
            if name == "quota":
                store.set_quota(user.id, Quota(10**12, 10**9))  # type: ignore[attr-defined]
            boxes[name] = store.get_mailbox(user.id, "INBOX").id  # type: ignore[attr-defined]
        best = {name: float("inf") for name in boxes}
        for r in range(args.repeat):
            for name, box in boxes.items():
                on = name != "off"
                switch(on)  # type: ignore[operator]
                setattr(
                    module,
                    names[module],  # type: ignore[index]
                    real[module] if on else (lambda conn, wanted, *_: [True] * len(wanted)),  # type: ignore[index]
                )
                best[name] = min(best[name], measure(store, box, clock, f"{r}{name}"))
        setattr(module, names[module], real[module])  # type: ignore[index]
        switch(True)  # type: ignore[operator]
        for name, value in best.items():
            print(f"{label:10} {name:9} {value * 1e6:8.1f} µs/delivery")

    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm, prefix="pm-quota-cost-") as d:
        store = cast(sqlite.SqliteStore, open_store(f"sqlite://{Path(d) / 'store.sqlite3'}"))
        conn = store._conn
        saved = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")]

        def sqlite_switch(on: bool) -> None:
            for name in ("messages_usage_add", "messages_usage_sub"):
                conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            if on:
                for sql in saved:
                    conn.execute(sql)

        run(store, sqlite, "sqlite", time.process_time, sqlite_switch)
        store.close()
    name = f"pm_quota_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    try:
        pg = cast(PostgresStore, open_store(url))
        with psycopg.connect(url, autocommit=True) as side:

            def pg_switch(on: bool) -> None:
                verb = "ENABLE" if on else "DISABLE"
                for trig in ("messages_usage_add", "messages_usage_sub"):
                    side.execute(f"ALTER TABLE messages {verb} TRIGGER {trig}")

            run(pg, pg_quota, "postgresql", time.perf_counter, pg_switch)
        pg.close()
    finally:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
