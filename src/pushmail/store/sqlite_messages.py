"""The SQLite store's reads of messages: metadata, UIDs, SELECT and resync state,
texts and cached structures (``interfaces.Store``).

A layer of ``SqliteStore`` (``sqlite.py``, which adds users, mailboxes and every
write), split off so that neither module passes 600 lines; the SQL fragments over
``messages`` are defined here and used by both.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Collection, Iterable

from pushmail.store.interfaces import (
    Changes,
    MailboxCounts,
    MessageCache,
    MessageMeta,
    NotFound,
    SelectInfo,
)
from pushmail.store.sqlite_extras import SqliteStoredData

META_COLS = "SELECT uid, modseq, flags, internaldate, tzoffset, size FROM messages"
IN_UIDS = "uid IN (SELECT value FROM json_each(?))"
HAS_DELETED = "instr(' ' || flags || ' ', ' \\Deleted ') > 0"
NOT_SEEN = "instr(' ' || flags || ' ', ' \\Seen ') = 0"


def uid_json(uids: Iterable[int]) -> str:
    return json.dumps([int(u) for u in uids])


class SqliteMessageReads(SqliteStoredData):
    """Reading messages; no method here writes."""

    def counts_many(self, mailbox_ids: Collection[int]) -> dict[int, MailboxCounts]:
        """``counts`` of many mailboxes in one query (LIST-STATUS over hundreds of
        folders paid a query per folder). Grouped by flags text too, of which a
        mailbox has few distinct values: \\Seen and \\Deleted are then looked up
        once per group, not tested in SQL per message (half the query's time)."""
        wanted = json.dumps([int(m) for m in mailbox_ids])
        with self._read() as conn:
            ids = conn.execute(
                "SELECT id FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))", (wanted,)
            ).fetchall()
            rows = conn.execute(
                "SELECT m.mailbox_id, m.flags, count(*), total(m.uid >= b.recent_floor), "
                "total(m.size) FROM mailboxes b JOIN messages m ON m.mailbox_id = b.id "
                "WHERE b.id IN (SELECT value FROM json_each(?)) GROUP BY m.mailbox_id, m.flags",
                (wanted,),
            ).fetchall()
        sums = {int(row[0]): [0, 0, 0, 0, 0, 0] for row in ids}  # empty ones too
        for mid, text, n, recent, size in rows:
            flags = self._flags(text)
            c = sums[int(mid)]
            c[0] += n
            c[1] += int(recent)
            c[3] += int(size)
            if "\\Seen" not in flags:
                c[2] += n
            if "\\Deleted" in flags:
                c[4] += n
                c[5] += int(size)
        return {mid: MailboxCounts(*c) for mid, c in sums.items()}

    # -- reading messages -------------------------------------------------------
    def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        rows = self._conn.execute(f"{META_COLS} WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))
        return [self._meta(row) for row in rows]

    def get_messages(self, mailbox_id: int, uids: Iterable[int]) -> list[MessageMeta]:
        rows = self._conn.execute(
            f"{META_COLS} WHERE mailbox_id = ? AND {IN_UIDS} ORDER BY uid",
            (mailbox_id, uid_json(uids)),
        )
        return [self._meta(row) for row in rows]

    def uids(self, mailbox_id: int) -> list[int]:
        # One row of JSON from the primary key instead of a tuple per message: the
        # cheapest way SQLite hands over 10^4+ integers (a third of the CPU). An
        # aggregate's input order is not promised before SQLite 3.44, so the list is
        # sorted again; it is sorted already, which timsort checks in linear time.
        (listed,) = self._conn.execute(
            "SELECT json_group_array(uid) FROM "
            "(SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid)",
            (mailbox_id,),
        ).fetchone()
        return sorted(json.loads(listed))

    def select_info(self, mailbox_id: int) -> SelectInfo:
        with self._read() as conn:
            box = conn.execute(
                "SELECT highestmodseq, uidnext, keywords, recent_floor FROM mailboxes WHERE id = ?",
                (mailbox_id,),
            ).fetchone()
            if box is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            uids = array("I", self.uids(mailbox_id))
            unseen = conn.execute(
                f"SELECT uid FROM messages WHERE mailbox_id = ? AND {NOT_SEEN} "
                "ORDER BY uid LIMIT 1",
                (mailbox_id,),
            ).fetchone()
            # The (mailbox_id, modseq) index answers max() in one seek.
            (top,) = conn.execute(
                "SELECT max(modseq) FROM messages WHERE mailbox_id = ?", (mailbox_id,)
            ).fetchone()
        return SelectInfo(
            uids=uids,
            first_unseen_uid=None if unseen is None else int(unseen[0]),
            highestmodseq=max(int(box[0]), int(top or 0)),
            uidnext=max(int(box[1]), (uids[-1] + 1) if uids else 1),
            keywords=self._keywords(box[2]),
            recent_floor=int(box[3]),
        )

    def changes_since(self, mailbox_id: int, since_modseq: int) -> Changes:
        with self._read() as conn:
            box = conn.execute(
                "SELECT highestmodseq, uidnext, vanished_floor, keywords FROM mailboxes "
                "WHERE id = ?",
                (mailbox_id,),
            ).fetchone()
            if box is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            # The (mailbox_id, modseq) index finds the few changed rows; sort them here.
            rows = conn.execute(
                f"{META_COLS} INDEXED BY messages_by_modseq WHERE mailbox_id = ? AND modseq > ?",
                (mailbox_id, since_modseq),
            ).fetchall()
            gone = conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
                (mailbox_id, since_modseq),
            ).fetchall()
        rows.sort()
        return Changes(
            highestmodseq=box[0],
            uidnext=box[1],
            changed=tuple(self._meta(row) for row in rows),
            expunged=tuple(sorted(row[0] for row in gone)),
            expunged_complete=since_modseq >= box[2],
            keywords=self._keywords(box[3]),
        )

    def keywords(self, mailbox_id: int) -> tuple[str, ...]:
        row = self._conn.execute(
            "SELECT keywords FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        return self._keywords(row[0])

    def get_raw(self, mailbox_id: int, uid: int) -> bytes:
        row = self._conn.execute(
            "SELECT b.raw FROM messages m JOIN bodies b ON b.id = m.body_id "
            "WHERE m.mailbox_id = ? AND m.uid = ?",
            (mailbox_id, uid),
        ).fetchone()
        if row is None:
            raise NotFound(f"no message {uid}")
        return bytes(row[0])

    def get_cache(self, mailbox_id: int, uid: int) -> MessageCache:
        row = self._conn.execute(
            "SELECT b.envelope, b.bodystructure, b.body, p.preview FROM messages m "
            "JOIN bodies b ON b.id = m.body_id LEFT JOIN previews p ON p.body_id = b.id "
            "WHERE m.mailbox_id = ? AND m.uid = ?",
            (mailbox_id, uid),
        ).fetchone()
        if row is None:
            raise NotFound(f"no message {uid}")
        return MessageCache(bytes(row[0]), bytes(row[1]), bytes(row[2]), row[3])
