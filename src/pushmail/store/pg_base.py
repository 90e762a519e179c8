"""The plumbing under ``PostgresStore``: borrowing connections, transactions with
retry, row decoding, and the bookkeeping every write shares (mailbox locks, MODSEQ,
keywords, bodies). Kept apart so ``postgres.py`` holds only what ``Store`` asks for.

Connections are borrowed from a bounded pool for the length of one store call and
given back at its end: a session between commands (an idle one above all) holds
none, and a node needs as many connections as it has store threads, not sessions.

Concurrency rule: every write that reads and then changes a mailbox's messages
first locks the mailbox row (``FOR UPDATE``), in ascending id order when it takes
several. Allocating a UID or MODSEQ is an UPDATE of that row, held until COMMIT, so
the transactions of one mailbox commit in the order of their UIDs and MODSEQs: a
reader can never see UID n+1 without UID n, nor a MODSEQ lower than one it saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import psycopg
from psycopg import Connection, errors
from psycopg_pool import ConnectionPool, PoolTimeout

from pushmail.store.common import extend_keywords, is_keyword
from pushmail.store.interfaces import (
    MessageMeta,
    NewMessage,
    NoSpace,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from pushmail.store.pg_blobs import BlobStore, PgBlobs
from pushmail.store.pg_quota import quota_admit
from pushmail.store.pg_schema import DEFAULT_POOL, POOLS, PoolSettings, migrate
from pushmail.store.sortkeys import store_keys

T = TypeVar("T")
MetaRow = tuple[int, int, str, int, int, int]

# Lock-order conflicts between two nodes' transactions (deadlock) are resolved by
# PostgreSQL aborting one; it is retried after a short random pause.
_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)
_MAX_TRIES = 8


class ConnectionLost(StoreUnavailable):
    """A pooled connection turned out dead, or the server went away mid-call."""


class PgBase:
    """A pool of connections and the helpers over it. One thread per object."""

    def __init__(
        self,
        url: str,
        pool: ConnectionPool | None = None,
        blobs: BlobStore | None = None,
        settings: PoolSettings = DEFAULT_POOL,
    ) -> None:
        self._url = url
        self._owns_pool = pool is None
        self._pool = POOLS.acquire(url, settings) if pool is None else pool
        self._closed = False
        self._blobs: BlobStore = PgBlobs() if blobs is None else blobs
        self._flag_cache: dict[str, frozenset[str]] = {"": frozenset()}
        self._keyword_cache: dict[str, tuple[str, ...]] = {"": ()}
        self._tz_cache: dict[int, timezone] = {}
        try:
            with self._connection() as conn:
                migrate(conn)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_pool:
            POOLS.release(self._url)

    # -- connections and transactions ---------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """Borrow a connection for one call. Errors of the link (not of a statement:
        a deadlock or lock timeout keeps its own class) become StoreUnavailable."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no database connection: {exc}") from exc
        except psycopg.OperationalError as exc:
            state = exc.sqlstate
            if state is None or state.startswith(("08", "57P")):
                raise ConnectionLost(f"database unavailable: {exc}") from exc
            if state == "53100":  # disk_full
                raise NoSpace(f"database full: {exc}") from exc
            raise

    def _read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (autocommit: each statement sees the newest commits). Reads
        are idempotent, so a connection found dead (the server restarted since it
        was last used) is replaced once."""
        try:
            with self._connection() as conn:
                return work(conn)
        except ConnectionLost:
            self._drop_dead_connections()
        with self._connection() as conn:
            return work(conn)

    def _drop_dead_connections(self) -> None:
        """One pooled connection was dead, so the others (opened before the same
        server restart) likely are too: test the idle ones and drop the dead, so
        the one retry gets a live connection."""
        with contextlib.suppress(psycopg.Error):  # the retry then reports it
            self._pool.check()

    def _snapshot(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read-only snapshot, so several queries agree."""

        def run(conn: Connection) -> T:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return work(conn)
            finally:
                if not conn.broken:
                    conn.execute("COMMIT")

        return self._read(run)

    def _write(
        self, work: Callable[[Connection], T], durable: bool = True, nowait: bool = False
    ) -> T:
        """Run ``work`` in one transaction, retried whole on a deadlock. A link
        lost before COMMIT was sent (a pooled connection found dead, the server
        restarting) is retried once on a new connection: the server rolled that
        transaction back. Lost during COMMIT it is not, as the COMMIT may have
        happened. ``durable=False`` lets COMMIT return before the WAL is flushed:
        for bookkeeping whose loss in a crash is harmless. ``nowait`` sets a near
        zero lock timeout: ``errors.LockNotAvailable`` rather than waiting."""
        dead_retried = False
        for attempt in range(_MAX_TRIES):
            committing = False
            try:
                with self._connection() as conn, conn.transaction():
                    if not durable:
                        conn.execute("SET LOCAL synchronous_commit = off")
                    if nowait:
                        conn.execute("SET LOCAL lock_timeout = 1")
                    result = work(conn)
                    committing = True
                return result
            except _RETRYABLE:
                if attempt == _MAX_TRIES - 1:
                    raise
                time.sleep(random.uniform(0.001, 0.005) * (attempt + 1))
            except ConnectionLost:
                if committing or dead_retried:
                    raise
                dead_retried = True
                self._drop_dead_connections()
        raise AssertionError("unreachable")

    # -- row decoding -----------------------------------------------------------
    def _flags(self, text: str) -> frozenset[str]:
        """Decode a flags column; the few distinct values are shared, not rebuilt."""
        flags = self._flag_cache.get(text)
        if flags is None:
            if len(self._flag_cache) > 4096:
                self._flag_cache = {"": frozenset()}
            flags = self._flag_cache[text] = frozenset(text.split(" "))
        return flags

    def _keywords(self, text: str) -> tuple[str, ...]:
        words = self._keyword_cache.get(text)
        if words is None:
            if len(self._keyword_cache) > 1024:
                self._keyword_cache = {"": ()}
            words = self._keyword_cache[text] = tuple(text.split(" "))
        return words

    def _date(self, ts: int, offset: int) -> datetime:
        tz = self._tz_cache.get(offset)
        if tz is None:
            tz = self._tz_cache[offset] = (
                UTC if offset == 0 else timezone(timedelta(minutes=offset))
            )
        return datetime.fromtimestamp(ts, tz)

    def _meta(self, row: Sequence[Any]) -> MessageMeta:
        return MessageMeta(
            int(row[0]),
            int(row[1]),
            self._flags(row[2]),
            self._date(int(row[3]), int(row[4])),
            int(row[5]),
        )

    # -- write bookkeeping ------------------------------------------------------
    @staticmethod
    def _lock_mailboxes(
        conn: Connection, mailbox_ids: Collection[int], missing_ok: bool = False
    ) -> bool:
        """Lock the mailbox rows, lowest id first (one order for every writer, so
        two never wait on each other). A missing one: NotFound, or False with
        ``missing_ok``."""
        wanted = sorted(set(mailbox_ids))
        rows = conn.execute(
            "SELECT id FROM mailboxes WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            (wanted,),
        ).fetchall()
        if len(rows) == len(wanted):
            return True
        if missing_ok:
            return False
        missing = set(wanted) - {int(r[0]) for r in rows}
        raise NotFound(f"no mailbox {min(missing)}")

    @staticmethod
    def _bump(conn: Connection, mailbox_id: int) -> int:
        row = conn.execute(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = %s "
            "RETURNING highestmodseq",
            (mailbox_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        return int(row[0])

    def _define_keywords(self, conn: Connection, mailbox_id: int, flags: frozenset[str]) -> None:
        """Inside a write holding the mailbox lock: add the keywords of ``flags`` the
        mailbox lacks (KeywordLimit beyond the cap rolls the command back)."""
        if not any(is_keyword(f) for f in flags):
            return
        row = conn.execute("SELECT keywords FROM mailboxes WHERE id = %s", (mailbox_id,)).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        defined = self._keywords(row[0])
        grown = extend_keywords(defined, flags)
        if grown is not defined:
            conn.execute(
                "UPDATE mailboxes SET keywords = %s WHERE id = %s", (" ".join(grown), mailbox_id)
            )

    def _store_body(self, conn: Connection, message: NewMessage) -> int:
        """The ``bodies`` id of ``message.raw``, stored now if new. The row is left
        locked (inserted, or ``FOR SHARE``) so a concurrent expunge elsewhere cannot
        drop it before this transaction's message refers to it."""
        digest = hashlib.sha256(message.raw).digest()
        cache = message.cache
        for _ in range(_MAX_TRIES):
            row = conn.execute(
                "INSERT INTO bodies (sha256, size, envelope, bodystructure, body) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING RETURNING id",
                (digest, len(message.raw), cache.envelope, cache.bodystructure, cache.body),
            ).fetchone()
            if row is not None:
                self._blobs.put(conn, digest, message.raw)
                store_keys(conn, "%s", int(row[0]), message.raw)
                if cache.preview is not None:
                    conn.execute(
                        "INSERT INTO previews (body_id, preview) VALUES (%s, %s)",
                        (row[0], cache.preview),
                    )
                return int(row[0])
            row = conn.execute(
                "SELECT id FROM bodies WHERE sha256 = %s FOR SHARE", (digest,)
            ).fetchone()
            if row is not None:
                return int(row[0])
            # Dropped by another node between the two statements: insert it again.
        raise StoreError("cannot store a message body")

    @staticmethod
    def _ints(conn: Connection, sql: str, params: Sequence[Any]) -> list[int]:
        """The first column of every row, as integers."""
        return [int(r[0]) for r in conn.execute(sql, params).fetchall()]

    def _gc_bodies(self, conn: Connection, body_ids: Collection[int]) -> None:
        """Drop the bodies (and texts) of ``body_ids`` that no message holds now.
        Lock them first; the DELETE, a new statement, then sees every message
        committed by a delivery that held one of them."""
        if not body_ids:
            return
        ids = sorted(set(body_ids))
        conn.execute(
            "SELECT id FROM bodies WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE", (ids,)
        )
        rows = conn.execute(
            "DELETE FROM bodies b WHERE b.id = ANY(%s::bigint[]) "
            "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.body_id = b.id) RETURNING sha256",
            (ids,),
        ).fetchall()
        self._blobs.delete(conn, [bytes(r[0]) for r in rows])

    def _remove(self, conn: Connection, mailbox_id: int, uids: list[int]) -> None:
        """Delete messages, remember them as expunged at a new MODSEQ, free bodies."""
        modseq = self._bump(conn, mailbox_id)
        now = int(time.time())
        body_ids = self._ints(
            conn,
            "DELETE FROM messages WHERE mailbox_id = %s AND uid = ANY(%s::bigint[]) "
            "RETURNING body_id",
            (mailbox_id, uids),
        )
        conn.execute(
            "INSERT INTO expunged (mailbox_id, uid, modseq, at) "
            "SELECT %s, u, %s, %s FROM unnest(%s::bigint[]) AS u "
            "ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq, "
            "at = excluded.at",
            (mailbox_id, modseq, now, uids),
        )
        self._gc_bodies(conn, body_ids)

    def _copy(
        self, conn: Connection, src: int, uids: list[int], dst: int, move: bool
    ) -> list[tuple[int, int]]:
        self._lock_mailboxes(conn, (src, dst))
        rows = conn.execute(
            "SELECT uid, body_id, flags, internaldate, tzoffset, size FROM messages "
            "WHERE mailbox_id = %s AND uid = ANY(%s::bigint[]) ORDER BY uid",
            (src, uids),
        ).fetchall()
        if not rows:
            return []
        if not move:  # a move within one user's mailboxes leaves the usage as it was
            wanted = [(dst, sum(int(r[5]) for r in rows), len(rows))]
            quota_admit(conn, wanted, partial=False)  # after the mailbox locks: pg_quota
        self._define_keywords(conn, dst, frozenset(" ".join(r[2] for r in rows).split(" ")))
        got = conn.execute(
            "UPDATE mailboxes SET uidnext = uidnext + %s, highestmodseq = highestmodseq + 1 "
            "WHERE id = %s RETURNING uidnext - %s, highestmodseq",
            (len(rows), dst, len(rows)),
        ).fetchone()
        assert got is not None  # locked above
        first, modseq = int(got[0]), int(got[1])
        now = int(time.time())  # the save date of a copy is when it was made (RFC 8514)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO messages (mailbox_id, uid, body_id, modseq, flags, internaldate, "
                "tzoffset, size, savedate) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (dst, first + i, r[1], modseq, r[2], r[3], r[4], r[5], now)
                    for i, r in enumerate(rows)
                ],
            )
        if move:
            self._remove(conn, src, [int(row[0]) for row in rows])
        return [(int(row[0]), first + i) for i, row in enumerate(rows)]

    def stored_texts(self) -> tuple[int, int]:
        """(``bodies`` rows, stored texts): both are one per distinct message text."""

        def run(conn: Connection) -> tuple[int, int]:
            row = conn.execute("SELECT count(*) FROM bodies").fetchone()
            return (0 if row is None else int(row[0])), self._blobs.count(conn)

        return self._snapshot(run)
