"""The plumbing under ``SqliteStore``: the connection, transactions, and the row
decoding and bookkeeping that every part of the store shares. Kept apart so that
``sqlite.py`` holds only what the ``Store`` protocol asks for."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from pushmail.store.common import extend_keywords, is_keyword
from pushmail.store.interfaces import MessageMeta, NotFound
from pushmail.store.sqlite_schema import BUSY_TIMEOUT_SECONDS, connect

MetaRow = tuple[int, int, str, int, int, int]

_FIRST_RETRY = 0.0005  # seconds between tries for the write lock, growing to
_LAST_RETRY = 0.004


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class SqliteBase:
    """One SQLite connection and the helpers over it. One thread per object."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path)
        self._flag_cache: dict[str, frozenset[str]] = {"": frozenset()}
        self._keyword_cache: dict[str, tuple[str, ...]] = {"": ()}
        self._tz_cache: dict[int, timezone] = {}

    @contextmanager
    def _write(self, durable: bool = True, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken up front. ``durable=False``
        skips the fsync at COMMIT (WAL with ``synchronous=NORMAL``): for bookkeeping
        whose loss in a crash is harmless; the next durable COMMIT syncs it too.
        ``wait=False`` raises ``sqlite3.OperationalError`` at once if another
        writer holds the lock."""
        conn = self._conn
        if not durable:
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self._begin_immediate(wait)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous = FULL")

    def _begin_immediate(self, wait: bool) -> None:
        """Take the write lock, polling every ~half millisecond while another
        process holds it. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 …
        ms between tries: with several worker processes committing deliveries, a
        writer slept for most of another's short commit, and throughput fell by
        half. Other statements keep the connection's long busy timeout."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            delay, deadline = _FIRST_RETRY, time.monotonic() + BUSY_TIMEOUT_SECONDS
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not wait or not _busy(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(delay)
                delay = min(delay * 1.5, _LAST_RETRY)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so several queries see one snapshot."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _flags(self, text: str) -> frozenset[str]:
        """Decode a flags column; the few distinct values are shared, not rebuilt."""
        flags = self._flag_cache.get(text)
        if flags is None:
            if len(self._flag_cache) > 4096:
                self._flag_cache = {"": frozenset()}
            flags = self._flag_cache[text] = frozenset(text.split(" "))
        return flags

    def _keywords(self, text: str) -> tuple[str, ...]:
        """Decode a mailbox's keywords column; shared like ``_flags``."""
        words = self._keyword_cache.get(text)
        if words is None:
            if len(self._keyword_cache) > 1024:
                self._keyword_cache = {"": ()}
            words = self._keyword_cache[text] = tuple(text.split(" "))
        return words

    def _define_keywords(self, mailbox_id: int, flags: frozenset[str]) -> None:
        """Inside a write: add the keywords of ``flags`` the mailbox lacks to its list
        (KeywordLimit beyond the cap, which rolls the whole command back)."""
        if not any(is_keyword(f) for f in flags):
            return
        row = self._conn.execute(
            "SELECT keywords FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        defined = self._keywords(row[0])
        grown = extend_keywords(defined, flags)
        if grown is not defined:
            self._conn.execute(
                "UPDATE mailboxes SET keywords = ? WHERE id = ?", (" ".join(grown), mailbox_id)
            )

    def _date(self, ts: int, offset: int) -> datetime:
        tz = self._tz_cache.get(offset)
        if tz is None:
            tz = self._tz_cache[offset] = (
                UTC if offset == 0 else timezone(timedelta(minutes=offset))
            )
        return datetime.fromtimestamp(ts, tz)

    def _meta(self, row: MetaRow) -> MessageMeta:
        return MessageMeta(row[0], row[1], self._flags(row[2]), self._date(row[3], row[4]), row[5])

    def _bump(self, mailbox_id: int) -> int:
        row = self._conn.execute(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? "
            "RETURNING highestmodseq",
            (mailbox_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        return int(row[0])

    def _gc_bodies(self) -> None:
        """Drop the bodies listed in ``temp.gc_bodies`` that no message holds now."""
        self._conn.execute(
            "DELETE FROM bodies WHERE id IN (SELECT body_id FROM temp.gc_bodies) "
            "AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = bodies.id)"
        )
        self._conn.execute("DELETE FROM temp.gc_bodies")
