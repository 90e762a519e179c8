"""Copy an SQLite push database into PostgreSQL (``pushmail migrate`` calls it after
the mail store's own copy, ``store/pg_import.py``).

What a user set up keeps working without a step of theirs: devices keep their ids
(rules name them), rules, the alert cursors (the mail store keeps its mailbox ids
and UIDs, so they still point at the last message alerted), the alerts still
queued (claims of the stopped server released), the account-id key (the opaque
account ids phones already know) and the VAPID key pair (browsers' subscriptions are
bound to its public key; the file beside the SQLite database).

One PostgreSQL transaction: a failure leaves the push tables empty. The target's
push tables must be empty; the source is read in one snapshot (stop the server
first).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from psycopg import Connection

from pushmail.push.db import VAPID_FILE
from pushmail.push.db_postgres import migrate
from pushmail.store.interfaces import StoreError

# (SQLite table, PostgreSQL table, columns), in foreign-key order.
_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("meta", "push_meta", ("key", "value")),
    (
        "devices",
        "push_devices",
        (
            "id",
            "user_id",
            "kind",
            "endpoint",
            "p256dh",
            "auth",
            "secret",
            "label",
            "created",
            "last_sent",
        ),
    ),
    ("rules", "push_rules", ("user_id", "device_id", "json")),
    ("cursors", "push_cursors", ("user_id", "mailbox_id", "last_uid", "last_modseq")),
    (
        "queue",
        "push_queue",
        (
            "id",
            "device_id",
            "topic",
            "alert",
            "created",
            "not_before",
            "deadline",
            "attempts",
            "rate_limited",
        ),
    ),
)
_IDENTITIES = ("push_devices", "push_queue")


class PushTargetNotEmpty(StoreError):
    """The PostgreSQL push tables already hold devices or secrets."""


def import_push_sqlite(sqlite_path: Path, conn: Connection) -> dict[str, int]:
    """Copy the push database at ``sqlite_path`` (and the VAPID key file beside it)
    into the database of ``conn`` (autocommit; the push tables are created if
    missing). Returns the rows copied per table. A missing file copies nothing: a
    server that never ran the push engine has none."""
    migrate(conn)
    if not sqlite_path.exists():
        return {}
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    counts: dict[str, int] = {}
    try:
        source.execute("BEGIN")  # one snapshot of the whole source
        with conn.transaction():
            conn.execute("LOCK TABLE push_meta, push_devices IN EXCLUSIVE MODE")
            for table in ("push_meta", "push_devices"):
                if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                    raise PushTargetNotEmpty(f"the PostgreSQL table {table} is not empty")
            for src, dst, cols in _TABLES:
                counts[dst] = _copy_rows(conn, source, src, dst, cols)
            vapid = sqlite_path.parent / VAPID_FILE
            if vapid.exists():
                conn.execute(
                    "INSERT INTO push_meta (key, value) VALUES (%s, %s)",
                    (VAPID_FILE, vapid.read_bytes()),
                )
                counts["vapid"] = 1
            for table in _IDENTITIES:
                conn.execute(  # later inserts continue after the copied ids
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
    finally:
        source.execute("ROLLBACK")
        source.close()
    return counts


def _copy_rows(
    conn: Connection, source: sqlite3.Connection, src: str, dst: str, cols: tuple[str, ...]
) -> int:
    names = ", ".join(cols)
    rows: Iterable[tuple[object, ...]] = source.execute(f"SELECT {names} FROM {src}")
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {dst} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(_pg_row(dst, cols, row))
            n += 1
    return n


def _pg_row(table: str, cols: tuple[str, ...], row: tuple[object, ...]) -> tuple[object, ...]:
    """SQLite's 0/1 ``rate_limited`` becomes a boolean; the rest is as stored."""
    if table != "push_queue":
        return row
    return tuple(bool(v) if c == "rate_limited" else v for c, v in zip(cols, row, strict=True))
