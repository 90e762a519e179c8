"""The embedded store: one SQLite file shared by every process of one server.

Durability is the law: a method that adds or changes mail returns only after COMMIT,
and COMMIT fsyncs the WAL (``synchronous=FULL``, see ``sqlite_schema.connect``).
Every write runs in ``BEGIN IMMEDIATE``, which takes the file's single write lock at
the start, so the read-modify-write of UIDNEXT and HIGHESTMODSEQ cannot interleave
with another process's (worker processes and ``pushmail deliver`` share the file).

Message texts live once in ``bodies`` (keyed by SHA-256), however many mailboxes hold
them; a body goes away in the same transaction as its last message. Statements are
fixed strings, so the connection's statement cache prepares each one once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Collection, Sequence

from pushmail.store.common import canonical_flags, mailbox_name, split_date
from pushmail.store.interfaces import (
    DEFAULT_MAILBOXES,
    HIERARCHY_DELIMITER,
    AlreadyExists,
    Appended,
    Conflict,
    FlagMode,
    FlagResult,
    Mailbox,
    MailboxCounts,
    MessageMeta,
    NewMessage,
    NotFound,
    StoreError,
    User,
)
from pushmail.store.sortkeys import store_keys
from pushmail.store.sqlite_base import MetaRow

# The SQL fragments are shared with the message reads; imported under their old
# names so the statements below read as before the split.
from pushmail.store.sqlite_messages import HAS_DELETED as _HAS_DELETED
from pushmail.store.sqlite_messages import IN_UIDS as _IN_UIDS
from pushmail.store.sqlite_messages import META_COLS as _META_COLS
from pushmail.store.sqlite_messages import NOT_SEEN as _NOT_SEEN
from pushmail.store.sqlite_messages import SqliteMessageReads
from pushmail.store.sqlite_messages import uid_json as _uid_json
from pushmail.store.sqlite_metadata import SqliteMetadata
from pushmail.store.sqlite_quota import SqliteQuota, quota_admit
from pushmail.store.sqlite_sort import SqliteSortKeys

log = logging.getLogger("pushmail.store")

_MAX_UIDVALIDITY = 0xFFFFFFFF

_MAILBOX_COLS = """
    SELECT m.id, m.user_id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.special_use,
           EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.user_id AND s.name = m.name)
    FROM mailboxes m"""


class SqliteStore(SqliteMessageReads, SqliteSortKeys, SqliteQuota, SqliteMetadata):
    """``pushmail.store.interfaces.Store`` on one SQLite file. One thread per object."""

    # -- users ------------------------------------------------------------------
    def create_user(self, address: str, password_hash: str) -> User:
        address = address.lower()
        with self._write() as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO users (address, password_hash) VALUES (?, ?)",
                    (address, password_hash),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"user {address} exists") from None
            user_id = int(cur.lastrowid or 0)
            for name, special_use in DEFAULT_MAILBOXES:
                self._insert_mailbox(user_id, name, special_use)
                conn.execute(
                    "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)", (user_id, name)
                )
        return User(user_id, address, password_hash)

    def create_users(self, users: Sequence[tuple[str, str]], update: bool = False) -> int:
        """Create many users (address, password hash) with their default mailboxes in
        one transaction, so an import is all or nothing and costs one fsync. An
        existing address is skipped, or given the new hash when ``update`` is true.
        Returns how many users were created."""
        created = 0
        with self._write() as conn:
            for raw_address, password_hash in users:
                address = raw_address.lower()
                row = conn.execute(
                    "INSERT INTO users (address, password_hash) VALUES (?, ?) "
                    "ON CONFLICT (address) DO NOTHING RETURNING id",
                    (address, password_hash),
                ).fetchone()
                if row is None:
                    if update:
                        conn.execute(
                            "UPDATE users SET password_hash = ? WHERE address = ?",
                            (password_hash, address),
                        )
                    continue
                created += 1
                for name, special_use in DEFAULT_MAILBOXES:
                    self._insert_one_mailbox(int(row[0]), name, special_use)
                    conn.execute(
                        "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)",
                        (int(row[0]), name),
                    )
        return created

    def get_user(self, address: str) -> User | None:
        row = self._conn.execute(
            "SELECT id, address, password_hash FROM users WHERE address = ?", (address.lower(),)
        ).fetchone()
        return None if row is None else User(*row)

    def get_user_by_id(self, user_id: int) -> User | None:
        row = self._conn.execute(
            "SELECT id, address, password_hash FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return None if row is None else User(*row)

    def list_users(self) -> list[User]:
        rows = self._conn.execute("SELECT id, address, password_hash FROM users ORDER BY address")
        return [User(*row) for row in rows]

    def set_password(self, address: str, password_hash: str) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET password_hash = ? WHERE address = ?",
                (password_hash, address.lower()),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no user {address}")

    def delete_user(self, address: str) -> None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT id FROM users WHERE address = ?", (address.lower(),)
            ).fetchone()
            if row is None:
                raise NotFound(f"no user {address}")
            conn.execute(
                "INSERT OR IGNORE INTO temp.gc_bodies SELECT body_id FROM messages "
                "WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)",
                (row[0],),
            )
            conn.execute("DELETE FROM users WHERE id = ?", (row[0],))
            self._gc_bodies()

    # -- mailboxes --------------------------------------------------------------
    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        rows = self._conn.execute(
            f"{_MAILBOX_COLS} WHERE m.user_id = ? ORDER BY m.name", (user_id,)
        )
        return [_mailbox(row) for row in rows]

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        if name.upper() == "INBOX":
            name = "INBOX"
        row = self._conn.execute(
            f"{_MAILBOX_COLS} WHERE m.user_id = ? AND m.name = ?", (user_id, name)
        ).fetchone()
        return None if row is None else _mailbox(row)

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        row = self._conn.execute(f"{_MAILBOX_COLS} WHERE m.id = ?", (mailbox_id,)).fetchone()
        return None if row is None else _mailbox(row)

    def highest_modseqs(self, mailbox_ids: Collection[int]) -> dict[int, int]:
        rows = self._conn.execute(
            "SELECT id, highestmodseq FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(mailbox_ids)),),
        )
        return {int(mid): int(modseq) for mid, modseq in rows}

    def _mailbox_id(self, user_id: int, name: str) -> int | None:
        row = self._conn.execute(
            "SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)
        ).fetchone()
        return None if row is None else int(row[0])

    def _next_uidvalidity(self) -> int:
        """A global counter that also never falls behind the clock: a mailbox
        deleted and re-created (even after the counter row were lost) gets a larger
        UIDVALIDITY than any earlier one of that name."""
        row = self._conn.execute("SELECT value FROM counters WHERE name = 'uidvalidity'").fetchone()
        value = max((0 if row is None else int(row[0])) + 1, int(time.time()))
        if value > _MAX_UIDVALIDITY:
            raise StoreError("UIDVALIDITY space exhausted")
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES ('uidvalidity', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (value,),
        )
        return value

    def _insert_mailbox(self, user_id: int, name: str, special_use: str | None) -> int:
        """Insert ``name`` after any missing parents; the caller checked it is new."""
        parts = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(parts)):
            parent = HIERARCHY_DELIMITER.join(parts[:depth])
            if self._mailbox_id(user_id, parent) is None:
                self._insert_one_mailbox(user_id, parent, None)
        return self._insert_one_mailbox(user_id, name, special_use)

    def _insert_one_mailbox(self, user_id: int, name: str, special_use: str | None) -> int:
        cur = self._conn.execute(
            "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
            (user_id, name, self._next_uidvalidity(), special_use),
        )
        return int(cur.lastrowid or 0)

    def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        name = mailbox_name(name)
        with self._write():
            if self._mailbox_id(user_id, name) is not None:
                raise AlreadyExists(f"mailbox {name} exists")
            if self.get_user_by_id(user_id) is None:
                raise NotFound(f"no user {user_id}")
            mailbox_id = self._insert_mailbox(user_id, name, special_use)
        mailbox = self.get_mailbox_by_id(mailbox_id)
        assert mailbox is not None
        return mailbox

    def delete_mailbox(self, user_id: int, name: str) -> None:
        name = mailbox_name(name)
        if name == "INBOX":
            raise Conflict("INBOX cannot be deleted")
        with self._write() as conn:
            mailbox_id = self._mailbox_id(user_id, name)
            if mailbox_id is None:
                raise NotFound(f"no mailbox {name}")
            conn.execute(
                "INSERT OR IGNORE INTO temp.gc_bodies SELECT body_id FROM messages "
                "WHERE mailbox_id = ?",
                (mailbox_id,),
            )
            conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
            self._gc_bodies()

    def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        old, new = mailbox_name(old), mailbox_name(new)
        with self._write() as conn:
            old_id = self._mailbox_id(user_id, old)
            if old_id is None:
                raise NotFound(f"no mailbox {old}")
            if self._mailbox_id(user_id, new) is not None:
                raise AlreadyExists(f"mailbox {new} exists")
            if old == "INBOX":
                # RFC 3501 §6.3.5: INBOX's messages move, INBOX stays (children do not).
                new_id = self._insert_mailbox(user_id, new, None)
                uids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT uid FROM messages WHERE mailbox_id = ?", (old_id,)
                    )
                ]
                self._copy(old_id, uids, new_id, move=True)
                return
            if new.startswith(old + HIERARCHY_DELIMITER):
                raise Conflict("cannot rename a mailbox into itself")
            self._rename_tree(user_id, old, new)

    def _rename_tree(self, user_id: int, old: str, new: str) -> None:
        prefix = old + HIERARCHY_DELIMITER
        rows = self._conn.execute(
            "SELECT id, name FROM mailboxes WHERE user_id = ? AND (name = ? OR "
            "substr(name, 1, ?) = ?)",
            (user_id, old, len(prefix), prefix),
        ).fetchall()
        moves = [(new + name[len(old) :], mailbox_id) for mailbox_id, name in rows]
        for target, _ in moves:
            if self._mailbox_id(user_id, target) is not None:
                raise AlreadyExists(f"mailbox {target} exists")
        parts = new.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(parts)):
            parent = HIERARCHY_DELIMITER.join(parts[:depth])
            if parent != old and self._mailbox_id(user_id, parent) is None:
                self._insert_one_mailbox(user_id, parent, None)
        self._conn.executemany("UPDATE mailboxes SET name = ? WHERE id = ?", moves)

    def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        if name.upper() == "INBOX":
            name = "INBOX"
        with self._write() as conn:
            if subscribed:
                conn.execute(
                    "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
                    (user_id, name),
                )
            else:
                conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name)
                )

    def subscriptions(self, user_id: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name", (user_id,)
        )
        return [row[0] for row in rows]

    def counts(self, mailbox_id: int) -> MailboxCounts:
        with self._read() as conn:
            box = conn.execute(
                "SELECT recent_floor FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if box is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            row = conn.execute(
                "SELECT count(*), total(uid >= ?), "
                f"total({_NOT_SEEN}), total(size), "
                f"total({_HAS_DELETED}), total(CASE WHEN {_HAS_DELETED} THEN size ELSE 0 END) "
                "FROM messages WHERE mailbox_id = ?",
                (box[0], mailbox_id),
            ).fetchone()
        return MailboxCounts(*(int(v) for v in row))

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
        self, targets: Sequence[tuple[int, NewMessage]], partial: bool
    ) -> list[Appended | None]:
        out: list[Appended | None] = []
        rows: list[tuple[int, int, int, int, str, int, int, int, int]] = []
        body_ids: dict[bytes, int] = {}
        now = int(time.time())
        with self._write() as conn:
            fits = quota_admit(conn, [(t[0], len(t[1].raw), 1) for t in targets], partial)
            for (mailbox_id, message), admitted in zip(targets, fits, strict=True):
                if not admitted:
                    out.append(None)
                    continue
                body_id = body_ids.get(message.raw)
                if body_id is None:
                    body_id = body_ids[message.raw] = self._store_body(message)
                got = conn.execute(
                    "UPDATE mailboxes SET uidnext = uidnext + 1, "
                    "highestmodseq = highestmodseq + 1 WHERE id = ? "
                    "RETURNING uidvalidity, uidnext - 1, highestmodseq",
                    (mailbox_id,),
                ).fetchone()
                if got is None:
                    raise NotFound(f"no mailbox {mailbox_id}")
                uidvalidity, uid, modseq = got
                ts, offset = split_date(message.internaldate, now)
                wanted = canonical_flags(message.flags)
                self._define_keywords(mailbox_id, wanted)
                flags = " ".join(sorted(wanted))
                size = len(message.raw)
                rows.append((mailbox_id, uid, body_id, modseq, flags, ts, offset, size, now))
                out.append(Appended(mailbox_id, uidvalidity, uid, modseq))
            conn.executemany(
                "INSERT INTO messages (mailbox_id, uid, body_id, modseq, flags, internaldate, "
                "tzoffset, size, savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return out

    def _store_body(self, message: NewMessage) -> int:
        digest = hashlib.sha256(message.raw).digest()
        cache = message.cache
        new = self._conn.execute(
            "INSERT INTO bodies (sha256, size, envelope, bodystructure, body, raw) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
            (
                digest,
                len(message.raw),
                cache.envelope,
                cache.bodystructure,
                cache.body,
                message.raw,
            ),
        )
        row = self._conn.execute("SELECT id FROM bodies WHERE sha256 = ?", (digest,)).fetchone()
        if new.rowcount:
            store_keys(self._conn, "?", row[0], message.raw)
        if cache.preview is not None:
            self._conn.execute(
                "INSERT INTO previews (body_id, preview) VALUES (?, ?) "
                "ON CONFLICT (body_id) DO NOTHING",
                (row[0], cache.preview),
            )
        return int(row[0])

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
        with self._write() as conn:
            rows = conn.execute(
                f"{_META_COLS} WHERE mailbox_id = ? AND {_IN_UIDS} ORDER BY uid",
                (mailbox_id, _uid_json(uids)),
            ).fetchall()
            modified: list[int] = []
            updates: list[tuple[MetaRow, frozenset[str]]] = []
            for row in rows:
                if unchangedsince is not None and row[1] > unchangedsince:
                    modified.append(row[0])
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
                self._define_keywords(mailbox_id, wanted)
            modseq = self._bump(mailbox_id)
            changed: list[MessageMeta] = []
            params: list[tuple[str, int, int, int]] = []
            for row, new in updates:
                text = " ".join(sorted(new))
                params.append((text, modseq, mailbox_id, row[0]))
                changed.append(self._meta((row[0], modseq, text, row[3], row[4], row[5])))
            conn.executemany(
                "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                params,
            )
        return FlagResult(tuple(changed), tuple(modified))

    def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        with self._write() as conn:
            if uids is None:
                found = conn.execute(
                    f"SELECT uid FROM messages WHERE mailbox_id = ? AND {_HAS_DELETED}",
                    (mailbox_id,),
                ).fetchall()
            else:
                found = conn.execute(
                    f"SELECT uid FROM messages WHERE mailbox_id = ? AND {_IN_UIDS} "
                    f"AND {_HAS_DELETED}",
                    (mailbox_id, _uid_json(uids)),
                ).fetchall()
            gone = sorted(row[0] for row in found)
            if gone:
                self._remove(mailbox_id, gone)
        return gone

    def _remove(self, mailbox_id: int, uids: list[int]) -> None:
        """Delete messages, remember them as expunged at a new MODSEQ, free bodies."""
        modseq = self._bump(mailbox_id)
        now = int(time.time())
        conn = self._conn
        conn.execute(
            f"INSERT OR IGNORE INTO temp.gc_bodies SELECT body_id FROM messages "
            f"WHERE mailbox_id = ? AND {_IN_UIDS}",
            (mailbox_id, _uid_json(uids)),
        )
        conn.executemany(
            "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", [(mailbox_id, u) for u in uids]
        )
        conn.executemany(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, at) VALUES (?, ?, ?, ?)",
            [(mailbox_id, u, modseq, now) for u in uids],
        )
        self._gc_bodies()

    def copy(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, move: bool = False
    ) -> list[tuple[int, int]]:
        with self._write():
            return self._copy(src_mailbox_id, uids, dst_mailbox_id, move)

    def _copy(self, src: int, uids: Sequence[int], dst: int, move: bool) -> list[tuple[int, int]]:
        conn = self._conn
        for mailbox_id in (src, dst):
            if (
                conn.execute("SELECT 1 FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
                is None
            ):
                raise NotFound(f"no mailbox {mailbox_id}")
        rows = conn.execute(
            "SELECT uid, body_id, flags, internaldate, tzoffset, size FROM messages "
            f"WHERE mailbox_id = ? AND {_IN_UIDS} ORDER BY uid",
            (src, _uid_json(uids)),
        ).fetchall()
        if not rows:
            return []
        if not move:  # a move within one user's mailboxes leaves the usage as it was
            quota_admit(conn, [(dst, sum(r[5] for r in rows), len(rows))], partial=False)
        self._define_keywords(dst, frozenset(" ".join(r[2] for r in rows).split(" ")))
        first, modseq = conn.execute(
            "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1 "
            "WHERE id = ? RETURNING uidnext - ?, highestmodseq",
            (len(rows), dst, len(rows)),
        ).fetchone()
        pairs = [(row[0], first + i) for i, row in enumerate(rows)]
        now = int(time.time())  # the save date of a copy is when it was made (RFC 8514)
        conn.executemany(
            "INSERT INTO messages (mailbox_id, uid, body_id, modseq, flags, internaldate, "
            "tzoffset, size, savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (dst, first + i, r[1], modseq, r[2], r[3], r[4], r[5], now)
                for i, r in enumerate(rows)
            ],
        )
        if move:
            self._remove(src, [row[0] for row in rows])
        return pairs

    def claim_recent(self, mailbox_id: int, wait: bool = True) -> int:
        """Not durable: after a crash, messages may be \\Recent once more (harmless),
        and a claim costs no fsync, which matters when every delivery wakes idlers.
        Nothing to claim (the common case) takes no write lock at all. With
        ``wait=False`` a claim that would wait for the write lock (a delivery is
        committing) is not made: the caller gets no \\Recent messages, and they stay
        for the next claim."""
        row = self._conn.execute(
            "SELECT recent_floor, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        if row[0] == row[1]:
            return int(row[0])
        seen_uidnext = int(row[1])
        try:
            with self._write(durable=False, wait=wait) as conn:
                row = conn.execute(
                    "SELECT recent_floor, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"no mailbox {mailbox_id}")
                floor, uidnext = row
                if floor != uidnext:
                    conn.execute(
                        "UPDATE mailboxes SET recent_floor = ? WHERE id = ?",
                        (uidnext, mailbox_id),
                    )
        except sqlite3.DatabaseError as exc:
            # Busy (``wait=False``), or a write that failed: a full disk, an I/O
            # error. A claim is bookkeeping; failing it must not fail the SELECT or
            # refresh that asked (issue 15 item 9). This session sees nothing as
            # \Recent and the messages stay \Recent for the next claim.
            if wait:
                log.warning("cannot claim \\Recent in mailbox %d: %s", mailbox_id, exc)
            return seen_uidnext
        return int(floor)

    # -- housekeeping -----------------------------------------------------------
    def prune_expunged(self, older_than: float) -> int:
        """Forget expunge records older than ``older_than`` seconds; a later
        ``changes_since`` from before them reports ``expunged_complete=False``."""
        cutoff = int(time.time() - older_than)
        with self._write() as conn:
            conn.execute(
                "UPDATE mailboxes SET vanished_floor = max(vanished_floor, (SELECT max(modseq) "
                "FROM expunged e WHERE e.mailbox_id = mailboxes.id AND e.at < ?)) "
                "WHERE id IN (SELECT mailbox_id FROM expunged WHERE at < ?)",
                (cutoff, cutoff),
            )
            cur = conn.execute("DELETE FROM expunged WHERE at < ?", (cutoff,))
        return cur.rowcount

    def close(self) -> None:
        self._conn.close()


def _mailbox(row: tuple[int, int, str, int, int, int, str | None, int]) -> Mailbox:
    return Mailbox(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))
