"""Quotas on the SQLite store (see ``store/quota.py``).

The gate runs inside the caller's ``BEGIN IMMEDIATE`` transaction: SQLite has one
writer at a time, so the usage it reads cannot change before the insert commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from pushmail.store.interfaces import Quota, QuotaUsage
from pushmail.store.quota import Room, admit, rooms_by_mailbox
from pushmail.store.sqlite_extras import SqliteStoredData


def quota_admit(
    conn: sqlite3.Connection, wanted: Sequence[tuple[int, int, int]], partial: bool
) -> list[bool]:
    """``quota.admit`` for (mailbox id, octets, messages), read in ``conn``'s
    write transaction. One indexed query when no owner has a quota."""
    mailbox_ids = sorted({w[0] for w in wanted})
    if len(mailbox_ids) == 1:  # the common case: no JSON to build and unpack
        rows = conn.execute(
            "SELECT m.id, q.user_id, q.storage_limit, q.message_limit FROM mailboxes m "
            "JOIN quotas q ON q.user_id = m.user_id WHERE m.id = ?",
            (mailbox_ids[0],),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT m.id, q.user_id, q.storage_limit, q.message_limit FROM mailboxes m "
            "JOIN quotas q ON q.user_id = m.user_id "
            "WHERE m.id IN (SELECT value FROM json_each(?))",
            (json.dumps(mailbox_ids),),
        ).fetchall()
    if not rows:
        return [True] * len(wanted)
    usage: dict[int, tuple[int, int]] = {}
    for user_id in sorted({int(r[1]) for r in rows}):
        b, n = conn.execute(
            "SELECT coalesce(sum(used_bytes), 0), coalesce(sum(used_messages), 0) "
            "FROM mailboxes WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        usage[user_id] = (int(b), int(n))
    rooms: dict[int, Room | None] = rooms_by_mailbox(rows, usage)
    return admit(wanted, rooms, partial)


class SqliteQuota(SqliteStoredData):
    """``get_quota``/``set_quota`` of ``interfaces.Store``."""

    def get_quota(self, user_id: int) -> tuple[Quota, QuotaUsage]:
        with self._read() as conn:
            row = conn.execute(
                "SELECT storage_limit, message_limit FROM quotas WHERE user_id = ?", (user_id,)
            ).fetchone()
            used = conn.execute(
                "SELECT coalesce(sum(used_bytes), 0), coalesce(sum(used_messages), 0) "
                "FROM mailboxes WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        quota = Quota() if row is None else Quota(row[0], row[1])
        return quota, QuotaUsage(int(used[0]), int(used[1]))

    def set_quota(self, user_id: int, quota: Quota) -> None:
        with self._write() as conn:
            if quota.empty:
                conn.execute("DELETE FROM quotas WHERE user_id = ?", (user_id,))
                return
            conn.execute(
                "INSERT INTO quotas (user_id, storage_limit, message_limit) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET storage_limit = excluded.storage_limit, "
                "message_limit = excluded.message_limit",
                (user_id, quota.storage, quota.messages),
            )
