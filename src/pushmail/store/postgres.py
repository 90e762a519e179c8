"""The shared store: PostgreSQL, for several ``pushmail serve`` nodes acting as one.

Same contract as ``SqliteStore`` (``interfaces.Store``), same values in the same
columns (``pg_schema.py``). What differs is how writers are kept apart: SQLite has
one write lock per file, PostgreSQL locks rows. Every write that touches a mailbox's
messages locks the mailbox row first (see ``pg_base``), which serialises the writers
of one mailbox across all nodes while other mailboxes proceed in parallel; UIDs and
MODSEQs are allocated under that lock in the transaction that makes the message
visible. Durability is PostgreSQL's ``synchronous_commit`` (on by default): a method
that adds or changes mail returns after COMMIT has been flushed.
"""

from __future__ import annotations

import functools
import logging
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import Connection, errors
from psycopg_pool import ConnectionPool

from pushmail.store import pg_quota
from pushmail.store.common import canonical_flags, email_object_id, split_date
from pushmail.store.interfaces import (
    Appended,
    Changes,
    FlagMode,
    FlagResult,
    MailboxCounts,
    MessageCache,
    MessageMeta,
    NewMessage,
    NotFound,
    Quota,
    QuotaUsage,
    SelectInfo,
    StoreError,
)
from pushmail.store.pg_blobs import BlobStore
from pushmail.store.pg_mailboxes import PgMailboxes
from pushmail.store.pg_metadata import PgMetadata
from pushmail.store.pg_schema import DEFAULT_POOL, PoolSettings
from pushmail.store.pg_sort import PgSortKeys

log = logging.getLogger("pushmail.store")

_META_COLS = "SELECT uid, modseq, flags, internaldate, tzoffset, size FROM messages"
_IN_UIDS = "uid = ANY(%s::bigint[])"
_HAS_DELETED = "strpos(' ' || flags || ' ', ' \\Deleted ') > 0"
_NOT_SEEN = "strpos(' ' || flags || ' ', ' \\Seen ') = 0"


def _uid_list(uids: Iterable[int]) -> list[int]:
    return [int(u) for u in uids]


class PostgresStore(PgMailboxes, PgSortKeys, PgMetadata):
    """``pushmail.store.interfaces.Store`` on a PostgreSQL database. One thread per
    object; objects of one process share a bounded connection pool."""

    def __init__(
        self,
        url: str,
        pool: ConnectionPool | None = None,
        blobs: BlobStore | None = None,
        settings: PoolSettings = DEFAULT_POOL,
    ) -> None:
        super().__init__(url, pool, blobs, settings)

    # -- adding messages --------------------------------------------------------
    def append(self, mailbox_id: int, message: NewMessage) -> Appended:
        return self.deliver([(mailbox_id, message)])[0]

    def deliver(self, targets: Sequence[tuple[int, NewMessage]]) -> list[Appended]:
        return [a for a in self._deliver(targets, partial=False) if a is not None]

    def deliver_within_quota(
        self, targets: Sequence[tuple[int, NewMessage]]
    ) -> list[Appended | None]:
        return self._deliver(targets, partial=True)

    def _deliver(
        self, all_targets: Sequence[tuple[int, NewMessage]], partial: bool
    ) -> list[Appended | None]:
        now = int(time.time())
        wanted = [(mailbox_id, len(m.raw), 1) for mailbox_id, m in all_targets]

        def run(conn: Connection) -> list[Appended | None]:
            # Mailboxes in id order, quota rows (see pg_quota), then bodies in digest
            # order: every writer takes its locks in one order, so two deliveries
            # never wait on each other. One mailbox needs no separate lock: the
            # UPDATE that allocates its UID takes it, and says whether its owner
            # has a quota (no round trip for the check of a user without one).
            mailbox_ids = {mailbox_id for mailbox_id, _ in all_targets}
            if len(mailbox_ids) > 1:
                self._lock_mailboxes(conn, mailbox_ids)
            allocated: list[Appended] = []
            owners: dict[int, int] = {}  # mailbox id -> user id, for users with a quota
            for mailbox_id, _ in all_targets:
                got = conn.execute(
                    "UPDATE mailboxes SET uidnext = uidnext + 1, "
                    "highestmodseq = highestmodseq + 1 WHERE id = %s "
                    "RETURNING uidvalidity, uidnext - 1, highestmodseq, user_id, "
                    "EXISTS (SELECT 1 FROM quotas q WHERE q.user_id = mailboxes.user_id)",
                    (mailbox_id,),
                ).fetchone()
                if got is None:
                    raise NotFound(f"no mailbox {mailbox_id}")
                allocated.append(Appended(mailbox_id, *(int(v) for v in got[:3])))
                if got[4]:
                    owners[mailbox_id] = int(got[3])
            fits = pg_quota.admit_owned(conn, wanted, owners, partial)
            targets = [t for t, ok in zip(all_targets, fits, strict=True) if ok]
            out = [a for a, ok in zip(allocated, fits, strict=True) if ok]
            for mailbox_id, message in targets:
                self._define_keywords(conn, mailbox_id, canonical_flags(message.flags))
            distinct = sorted({m.raw: m for _, m in targets}.values(), key=lambda m: m.raw)
            body_ids = {m.raw: self._store_body(conn, m) for m in distinct}
            rows: list[tuple[int, int, int, int, str, int, int, int, int]] = []
            for done, (_, message) in zip(out, targets, strict=True):
                ts, offset = split_date(message.internaldate, now)
                flags = " ".join(sorted(canonical_flags(message.flags)))
                body_id, size = body_ids[message.raw], len(message.raw)
                rows.append(
                    (done.mailbox_id, done.uid, body_id, done.modseq, flags, ts, offset, size, now)
                )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO messages (mailbox_id, uid, body_id, modseq, flags, "
                    "internaldate, tzoffset, size, savedate) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )
            made = iter(out)
            return [next(made) if ok else None for ok in fits]

        return self._write(run)

    def get_quota(self, user_id: int) -> tuple[Quota, QuotaUsage]:
        return self._snapshot(lambda conn: pg_quota.get_quota(conn, user_id))

    def set_quota(self, user_id: int, quota: Quota) -> None:
        self._write(lambda conn: pg_quota.set_quota(conn, user_id, quota))

    # -- reading messages -------------------------------------------------------
    def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        def run(conn: Connection) -> list[MessageMeta]:
            rows = conn.execute(
                f"{_META_COLS} WHERE mailbox_id = %s ORDER BY uid", (mailbox_id,)
            ).fetchall()
            return [self._meta(row) for row in rows]

        return self._read(run)

    def get_messages(self, mailbox_id: int, uids: Iterable[int]) -> list[MessageMeta]:
        wanted = _uid_list(uids)

        def run(conn: Connection) -> list[MessageMeta]:
            rows = conn.execute(
                f"{_META_COLS} WHERE mailbox_id = %s AND {_IN_UIDS} ORDER BY uid",
                (mailbox_id, wanted),
            ).fetchall()
            return [self._meta(row) for row in rows]

        return self._read(run) if wanted else []

    @staticmethod
    def _uids(conn: Connection, mailbox_id: int) -> list[int]:
        # One array value instead of a row per message: far less per-row overhead
        # for the 10^4+ UIDs of a large mailbox.
        row = conn.execute(
            "SELECT coalesce(array_agg(uid ORDER BY uid), '{}') FROM messages "
            "WHERE mailbox_id = %s",
            (mailbox_id,),
        ).fetchone()
        return [] if row is None else [int(u) for u in row[0]]

    def uids(self, mailbox_id: int) -> list[int]:
        return self._read(lambda conn: self._uids(conn, mailbox_id))

    # SELECT and the idle re-check run these two on every wake-up: each is one
    # statement (one round trip, and one snapshot without BEGIN/COMMIT), the rows
    # handed over as parallel typed arrays rather than a row per message.
    def select_info(self, mailbox_id: int) -> SelectInfo:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT b.highestmodseq, b.uidnext, b.keywords, b.recent_floor, "
                "coalesce(u.uids, '{}'), u.top, "
                f"(SELECT min(uid) FROM messages WHERE mailbox_id = b.id AND {_NOT_SEEN}) "
                "FROM mailboxes b, LATERAL (SELECT array_agg(uid ORDER BY uid) AS uids, "
                "max(modseq) AS top FROM messages WHERE mailbox_id = b.id) u WHERE b.id = %s",
                (mailbox_id,),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        uids = array("I", row[4])
        return SelectInfo(
            uids=uids,
            first_unseen_uid=None if row[6] is None else int(row[6]),
            highestmodseq=max(int(row[0]), int(row[5] or 0)),
            uidnext=max(int(row[1]), (uids[-1] + 1) if uids else 1),
            keywords=self._keywords(row[2]),
            recent_floor=int(row[3]),
        )

    def changes_since(self, mailbox_id: int, since_modseq: int) -> Changes:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT b.highestmodseq, b.uidnext, b.vanished_floor, b.keywords, "
                "c.uids, c.modseqs, c.flags, c.dates, c.offsets, c.sizes, "
                "(SELECT array_agg(uid ORDER BY uid) FROM expunged "
                " WHERE mailbox_id = b.id AND modseq > %(since)s) "
                "FROM mailboxes b, LATERAL (SELECT array_agg(uid ORDER BY uid) AS uids, "
                "array_agg(modseq ORDER BY uid) AS modseqs, "
                "array_agg(flags ORDER BY uid) AS flags, "
                "array_agg(internaldate ORDER BY uid) AS dates, "
                "array_agg(tzoffset ORDER BY uid) AS offsets, "
                "array_agg(size ORDER BY uid) AS sizes FROM messages "
                "WHERE mailbox_id = b.id AND modseq > %(since)s) c WHERE b.id = %(id)s",
                {"since": since_modseq, "id": mailbox_id},
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        changed = () if row[4] is None else tuple(map(self._meta, zip(*row[4:10], strict=True)))
        return Changes(
            highestmodseq=int(row[0]),
            uidnext=int(row[1]),
            changed=changed,
            expunged=tuple(int(u) for u in row[10] or ()),
            expunged_complete=since_modseq >= int(row[2]),
            keywords=self._keywords(row[3]),
        )

    def keywords(self, mailbox_id: int) -> tuple[str, ...]:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT keywords FROM mailboxes WHERE id = %s", (mailbox_id,)
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        return self._keywords(row[0])

    def get_raw(self, mailbox_id: int, uid: int) -> bytes:
        def run(conn: Connection) -> bytes | None:
            row = conn.execute(
                "SELECT b.sha256 FROM messages m JOIN bodies b ON b.id = m.body_id "
                "WHERE m.mailbox_id = %s AND m.uid = %s",
                (mailbox_id, uid),
            ).fetchone()
            # Expunged (and its text dropped) between the two reads: as if before.
            return None if row is None else self._blobs.get(conn, bytes(row[0]))

        raw = self._read(run)
        if raw is None:
            raise NotFound(f"no message {uid}")
        return raw

    def get_cache(self, mailbox_id: int, uid: int) -> MessageCache:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT b.envelope, b.bodystructure, b.body, p.preview FROM messages m "
                "JOIN bodies b ON b.id = m.body_id LEFT JOIN previews p ON p.body_id = b.id "
                "WHERE m.mailbox_id = %s AND m.uid = %s",
                (mailbox_id, uid),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no message {uid}")
        return MessageCache(bytes(row[0]), bytes(row[1]), bytes(row[2]), row[3])

    def email_ids(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, str]:
        listed = _uid_list(uids)
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT m.uid, b.sha256 FROM messages m JOIN bodies b ON b.id = m.body_id "
                "WHERE m.mailbox_id = %s AND m.uid = ANY(%s::bigint[])",
                (mailbox_id, listed),
            ).fetchall()
        )
        return {int(uid): email_object_id(bytes(sha)) for uid, sha in rows}

    def save_dates(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, datetime | None]:
        listed = _uid_list(uids)
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT uid, savedate FROM messages "
                "WHERE mailbox_id = %s AND uid = ANY(%s::bigint[])",
                (mailbox_id, listed),
            ).fetchall()
        )
        return {
            int(uid): None if ts is None else datetime.fromtimestamp(int(ts), UTC)
            for uid, ts in rows
        }

    def previews(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, str | None]:
        listed = _uid_list(uids)
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT m.uid, p.preview FROM messages m LEFT JOIN previews p "
                "ON p.body_id = m.body_id WHERE m.mailbox_id = %s AND m.uid = ANY(%s::bigint[])",
                (mailbox_id, listed),
            ).fetchall()
        )
        return {int(uid): text for uid, text in rows}

    # -- changing messages ------------------------------------------------------
    def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: frozenset[str],
        unchangedsince: int | None = None,
    ) -> FlagResult:
        wanted = canonical_flags(flags)
        listed = _uid_list(uids)

        def run(conn: Connection) -> FlagResult:
            # A mailbox deleted meanwhile has no messages to change (as SQLite says).
            if not self._lock_mailboxes(conn, [mailbox_id], missing_ok=True):
                return FlagResult((), ())
            rows = conn.execute(
                f"{_META_COLS} WHERE mailbox_id = %s AND {_IN_UIDS} ORDER BY uid",
                (mailbox_id, listed),
            ).fetchall()
            modified: list[int] = []
            updates: list[tuple[Any, frozenset[str]]] = []
            for row in rows:
                if unchangedsince is not None and int(row[1]) > unchangedsince:
                    modified.append(int(row[0]))
                    continue
                current = self._flags(row[2])
                if mode == "set":
                    new = wanted
                elif mode == "add":
                    new = current | wanted
                else:
                    new = current - wanted
                if new != current:
                    updates.append((row, new))
            if not updates:
                return FlagResult((), tuple(modified))
            if mode != "remove":
                self._define_keywords(conn, mailbox_id, wanted)
            modseq = self._bump(conn, mailbox_id)
            changed: list[MessageMeta] = []
            params: list[tuple[str, int, int, int]] = []
            for row, new in updates:
                text = " ".join(sorted(new))
                params.append((text, modseq, mailbox_id, int(row[0])))
                changed.append(self._meta((row[0], modseq, text, row[3], row[4], row[5])))
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE messages SET flags = %s, modseq = %s "
                    "WHERE mailbox_id = %s AND uid = %s",
                    params,
                )
            return FlagResult(tuple(changed), tuple(modified))

        return self._write(run)

    def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        listed = None if uids is None else _uid_list(uids)

        def run(conn: Connection) -> list[int]:
            if not self._lock_mailboxes(conn, [mailbox_id], missing_ok=True):
                return []  # deleted meanwhile: nothing to expunge (as SQLite says)
            if listed is None:
                found = conn.execute(
                    f"SELECT uid FROM messages WHERE mailbox_id = %s AND {_HAS_DELETED}",
                    (mailbox_id,),
                ).fetchall()
            else:
                found = conn.execute(
                    f"SELECT uid FROM messages WHERE mailbox_id = %s AND {_IN_UIDS} "
                    f"AND {_HAS_DELETED}",
                    (mailbox_id, listed),
                ).fetchall()
            gone = sorted(int(row[0]) for row in found)
            if gone:
                self._remove(conn, mailbox_id, gone)
            return gone

        return self._write(run)

    def copy(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, move: bool = False
    ) -> list[tuple[int, int]]:
        listed = _uid_list(uids)
        return self._write(
            lambda conn: self._copy(conn, src_mailbox_id, listed, dst_mailbox_id, move)
        )

    def claim_recent(self, mailbox_id: int, wait: bool = True) -> int:
        """Not durable (``synchronous_commit`` off): after a crash, messages may be
        \\Recent once more (harmless). Nothing to claim takes no lock at all. With
        ``wait=False`` a claim that would wait for the mailbox lock (a delivery is
        committing) is not made; the messages stay \\Recent for the next claim."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT recent_floor, uidnext FROM mailboxes WHERE id = %s", (mailbox_id,)
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        if row[0] == row[1]:
            return int(row[0])
        seen_uidnext = int(row[1])

        def run(conn: Connection) -> int:
            got = conn.execute(
                "SELECT recent_floor, uidnext FROM mailboxes WHERE id = %s FOR UPDATE",
                (mailbox_id,),
            ).fetchone()
            if got is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            floor, uidnext = int(got[0]), int(got[1])
            if floor != uidnext:
                conn.execute(
                    "UPDATE mailboxes SET recent_floor = %s WHERE id = %s", (uidnext, mailbox_id)
                )
            return floor

        try:
            return self._write(run, durable=False, nowait=not wait)
        except (psycopg.Error, StoreError) as exc:
            if isinstance(exc, NotFound):
                raise
            # Busy (``wait=False``) or a failed write: a claim is bookkeeping and
            # must not fail the SELECT or refresh that asked (issue 15 item 9).
            if wait or not isinstance(exc, errors.LockNotAvailable):
                log.warning("cannot claim \\Recent in mailbox %d: %s", mailbox_id, exc)
            return seen_uidnext

    # -- housekeeping -----------------------------------------------------------
    def prune_expunged(self, older_than: float) -> int:
        cutoff = int(time.time() - older_than)

        def run(conn: Connection) -> int:
            conn.execute(
                "UPDATE mailboxes m SET vanished_floor = greatest(m.vanished_floor, "
                "(SELECT max(modseq) FROM expunged e WHERE e.mailbox_id = m.id AND e.at < %s)) "
                "WHERE id IN (SELECT mailbox_id FROM expunged WHERE at < %s)",
                (cutoff, cutoff),
            )
            cur = conn.execute("DELETE FROM expunged WHERE at < %s", (cutoff,))
            return int(cur.rowcount)

        return self._write(run)

    def structure_version(self) -> int:
        """Which way of computing ENVELOPE/BODYSTRUCTURE the stored rows follow
        (``counters`` row ``structure_version``; 0: before versioning)."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT value FROM counters WHERE name = 'structure_version'"
            ).fetchone()
        )
        return 0 if row is None else int(row[0])

    def refresh_structures(
        self, version: int, compute: Callable[[bytes], MessageCache], batch: int = 200
    ) -> int:
        """As ``sqlite_refresh.refresh_structures``: recompute every body's cache
        from its text when the stored version is older, in short transactions (the
        text read through the blob store), then record ``version``. Nodes starting
        at once may both do it; the result is the same. Returns the bodies redone."""
        if self.structure_version() >= version:
            return 0
        done, last = 0, 0
        while texts := self._texts_after(last, batch):
            updates = [
                (cache.envelope, cache.bodystructure, cache.body, cache.preview or "", body_id)
                for body_id, raw in texts
                if raw is not None
                for cache in (compute(raw),)
            ]
            self._write(functools.partial(_set_caches, updates))
            done += len(updates)
            last = texts[-1][0]
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO counters (name, value) VALUES ('structure_version', %s) "
                "ON CONFLICT (name) DO UPDATE SET value = greatest(counters.value, excluded.value)",
                (version,),
            )
        )
        if done:
            log.info("recomputed the structures of %d stored messages (version %d)", done, version)
        return done

    def _texts_after(self, after: int, limit: int) -> list[tuple[int, bytes | None]]:
        """The next ``limit`` bodies by id after ``after``, with their texts."""

        def run(conn: Connection) -> list[tuple[int, bytes | None]]:
            rows = conn.execute(
                "SELECT id, sha256 FROM bodies WHERE id > %s ORDER BY id LIMIT %s", (after, limit)
            ).fetchall()
            return [(int(r[0]), self._blobs.get(conn, bytes(r[1]))) for r in rows]

        return self._read(run)

    def highest_modseqs(self, mailbox_ids: Collection[int]) -> dict[int, int]:
        wanted = [int(m) for m in mailbox_ids]
        if not wanted:
            return {}
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT id, highestmodseq FROM mailboxes WHERE id = ANY(%s::bigint[])", (wanted,)
            ).fetchall()
        )
        return {int(mid): int(modseq) for mid, modseq in rows}

    def counts(self, mailbox_id: int) -> MailboxCounts:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT c.* FROM mailboxes b, LATERAL (SELECT count(*), "
                "count(*) FILTER (WHERE uid >= b.recent_floor), "
                f"count(*) FILTER (WHERE {_NOT_SEEN}), coalesce(sum(size), 0), "
                f"count(*) FILTER (WHERE {_HAS_DELETED}), "
                f"coalesce(sum(size) FILTER (WHERE {_HAS_DELETED}), 0) FROM messages "
                "WHERE mailbox_id = b.id) c WHERE b.id = %s",
                (mailbox_id,),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        return MailboxCounts(*(int(v) for v in row))

    def counts_many(self, mailbox_ids: Collection[int]) -> dict[int, MailboxCounts]:
        wanted = [int(m) for m in mailbox_ids]
        if not wanted:
            return {}
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT b.id, c.* FROM mailboxes b, LATERAL (SELECT count(*), "
                "count(*) FILTER (WHERE uid >= b.recent_floor), "
                f"count(*) FILTER (WHERE {_NOT_SEEN}), coalesce(sum(size), 0), "
                f"count(*) FILTER (WHERE {_HAS_DELETED}), "
                f"coalesce(sum(size) FILTER (WHERE {_HAS_DELETED}), 0) FROM messages "
                "WHERE mailbox_id = b.id) c WHERE b.id = ANY(%s::bigint[])",
                (wanted,),
            ).fetchall()
        )
        return {int(mid): MailboxCounts(*(int(v) for v in rest)) for mid, *rest in rows}


def _set_caches(updates: list[tuple[bytes, bytes, bytes, str, int]], conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE bodies SET envelope = %s, bodystructure = %s, body = %s WHERE id = %s",
            [(env, bs, body, body_id) for env, bs, body, _, body_id in updates],
        )
        # Only bodies that still exist (one may have been expunged meanwhile).
        cur.executemany(
            "INSERT INTO previews (body_id, preview) SELECT id, %s FROM bodies WHERE id = %s "
            "ON CONFLICT (body_id) DO UPDATE SET preview = excluded.preview",
            [(text, body_id) for _, _, _, text, body_id in updates],
        )
