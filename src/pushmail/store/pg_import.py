"""Copy an SQLite store into an empty PostgreSQL store, so that clients do not resync.

Everything a client has been told is kept as it is: user and mailbox ids, names,
UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, every message's UID, MODSEQ, flags and internal
date, the keywords lists, the expunge history (for QRESYNC's VANISHED) and its
floor, subscriptions, the \\Recent floor and the UIDVALIDITY counter, the stored
PREVIEW texts and SORT keys, the quotas and the METADATA entries. Bodies keep their
ids; texts go through the target's ``BlobStore``.

The source is read in one SQLite read transaction (one snapshot; stop the server
first all the same, or mail delivered meanwhile stays behind), the target written in
one PostgreSQL transaction: a failure leaves it empty. Rows stream through COPY, so
memory does not grow with the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from psycopg import Connection

from pushmail.store.interfaces import StoreError
from pushmail.store.pg_blobs import BlobStore, PgBlobs
from pushmail.store.pg_schema import migrate
from pushmail.store.sqlite_schema import connect as sqlite_connect

# (table, columns) in an order that satisfies the foreign keys; the same column
# names on both sides. ``bodies`` is handled apart (its text goes to the blobs).
_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("users", ("id", "address", "password_hash")),
    (
        "mailboxes",
        (
            "id",
            "user_id",
            "name",
            "uidvalidity",
            "uidnext",
            "highestmodseq",
            "special_use",
            "recent_floor",
            "vanished_floor",
            "keywords",
        ),
    ),
    ("subscriptions", ("user_id", "name")),
    ("quotas", ("user_id", "storage_limit", "message_limit")),
    ("metadata", ("user_id", "mailbox_id", "name", "value")),
    ("counters", ("name", "value")),
)
_AFTER_BODIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("previews", ("body_id", "preview")),
    (
        "sortkeys",
        (
            "body_id",
            "version",
            "subject",
            "reply",
            "addr_from",
            "addr_to",
            "addr_cc",
            "disp_from",
            "disp_to",
            "sent",
            "msgid",
            "refs",
        ),
    ),
    (
        "messages",
        (
            "mailbox_id",
            "uid",
            "body_id",
            "modseq",
            "flags",
            "internaldate",
            "tzoffset",
            "size",
            "savedate",
        ),
    ),
    ("expunged", ("mailbox_id", "uid", "modseq", "at")),
)
_BODY_COLS = ("id", "sha256", "size", "envelope", "bodystructure", "body")
_IDENTITIES = ("users", "mailboxes", "bodies")


@dataclass(frozen=True, slots=True)
class Imported:
    """Rows copied per table."""

    counts: dict[str, int]


class TargetNotEmpty(StoreError):
    """The PostgreSQL store already holds users: importing would mix two stores."""


def import_sqlite(sqlite_path: Path, conn: Connection, blobs: BlobStore | None = None) -> Imported:
    """Copy the SQLite store at ``sqlite_path`` into the database of ``conn`` (an
    autocommit connection; its schema is created if missing, and must hold no user)."""
    blob_store: BlobStore = PgBlobs() if blobs is None else blobs
    migrate(conn)
    source = sqlite_connect(sqlite_path)
    counts: dict[str, int] = {}
    try:
        source.execute("BEGIN")  # one snapshot of the whole source
        with conn.transaction():
            # Nobody else may import or write users meanwhile.
            conn.execute("LOCK TABLE users IN EXCLUSIVE MODE")
            if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None:
                raise TargetNotEmpty("the PostgreSQL store is not empty")
            conn.execute("DELETE FROM counters")  # a fresh schema's own counters
            for table, cols in _TABLES:
                counts[table] = _copy_rows(conn, source, table, cols)
            counts["bodies"] = _copy_bodies(conn, source, blob_store)
            for table, cols in _AFTER_BODIES:
                counts[table] = _copy_rows(conn, source, table, cols)
            for table in _IDENTITIES:
                # Later inserts continue after the copied ids.
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
    finally:
        source.execute("ROLLBACK")
        source.close()
    return Imported(counts)


def _copy_rows(
    conn: Connection, source: sqlite3.Connection, table: str, cols: tuple[str, ...]
) -> int:
    names = ", ".join(cols)
    rows: Iterable[tuple[object, ...]] = source.execute(f"SELECT {names} FROM {table}")
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _copy_bodies(conn: Connection, source: sqlite3.Connection, blobs: BlobStore) -> int:
    names = ", ".join(_BODY_COLS)
    n = 0
    rows = source.execute(f"SELECT {names}, raw FROM bodies ORDER BY id")
    while batch := rows.fetchmany(256):
        with conn.cursor() as cur, cur.copy(f"COPY bodies ({names}) FROM STDIN") as copy:
            for row in batch:
                copy.write_row(row[:-1])
        for row in batch:
            blobs.put(conn, bytes(row[1]), bytes(row[-1]))
        n += len(batch)
    return n
