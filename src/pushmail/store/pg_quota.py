"""Quotas on the PostgreSQL store (see ``store/quota.py``).

Nodes write in parallel, so the gate locks the owners' quota rows ``FOR UPDATE``
(lowest user id first) before it reads the usage: a second delivery to the same
user (to any of their mailboxes) waits there until the first has committed, and
then reads the usage that includes it (READ COMMITTED: each statement sees the
newest commits). The gate runs after the writer has locked its mailbox rows, so
every writer takes mailbox rows, then quota rows, then bodies: one order, no
deadlock. A delivery learns whether an owner has a quota from the UPDATE that
allocates the UID (no extra round trip for users without one); a refused
recipient's UID then stays unused, a gap that UIDs may have (they must ascend,
not be contiguous).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import Connection

from pushmail.store.interfaces import Quota, QuotaUsage
from pushmail.store.quota import Room, admit, rooms_by_mailbox


def quota_admit(
    conn: Connection, wanted: Sequence[tuple[int, int, int]], partial: bool
) -> list[bool]:
    """``quota.admit`` for (mailbox id, octets, messages) inside ``conn``'s write
    transaction; the quota rows stay locked until it ends."""
    mailbox_ids = sorted({w[0] for w in wanted})
    owners = conn.execute(
        "SELECT m.id, m.user_id FROM mailboxes m WHERE m.id = ANY(%s::bigint[]) "
        "AND EXISTS (SELECT 1 FROM quotas q WHERE q.user_id = m.user_id)",
        (mailbox_ids,),
    ).fetchall()
    return admit_owned(conn, wanted, {int(m): int(u) for m, u in owners}, partial)


def admit_owned(
    conn: Connection,
    wanted: Sequence[tuple[int, int, int]],
    owners: dict[int, int],
    partial: bool,
) -> list[bool]:
    """``quota_admit`` when the caller knows the owner of each target mailbox whose
    user has a quota (``owners``: mailbox id → user id; the others pass)."""
    if not owners:
        return [True] * len(wanted)
    users = sorted(set(owners.values()))
    # Two statements, one round trip (pipeline): the server runs the second after
    # the first holds its locks, with a snapshot of its own (READ COMMITTED), so
    # the usage it reads includes every delivery that held the lock before us.
    with conn.pipeline():
        locked = conn.execute(
            "SELECT user_id, storage_limit, message_limit FROM quotas "
            "WHERE user_id = ANY(%s::bigint[]) ORDER BY user_id FOR UPDATE",
            (users,),
        )
        summed = conn.execute(
            "SELECT user_id, sum(used_bytes), sum(used_messages) FROM mailboxes "
            "WHERE user_id = ANY(%s::bigint[]) GROUP BY user_id",
            (users,),
        )
    limits = {int(r[0]): (r[1], r[2]) for r in locked.fetchall()}
    usage = {int(r[0]): (int(r[1]), int(r[2])) for r in summed.fetchall()}
    rows = [(mid, uid, *limits[uid]) for mid, uid in owners.items() if uid in limits]
    rooms: dict[int, Room | None] = rooms_by_mailbox(rows, usage)
    return admit(wanted, rooms, partial)


def get_quota(conn: Connection, user_id: int) -> tuple[Quota, QuotaUsage]:
    """``Store.get_quota``, in the caller's snapshot."""
    row = conn.execute(
        "SELECT storage_limit, message_limit FROM quotas WHERE user_id = %s", (user_id,)
    ).fetchone()
    used = conn.execute(
        "SELECT coalesce(sum(used_bytes), 0), coalesce(sum(used_messages), 0) "
        "FROM mailboxes WHERE user_id = %s",
        (user_id,),
    ).fetchone()
    assert used is not None  # an aggregate always has a row
    quota = Quota() if row is None else Quota(row[0], row[1])
    return quota, QuotaUsage(int(used[0]), int(used[1]))


def set_quota(conn: Connection, user_id: int, quota: Quota) -> None:
    """``Store.set_quota``, in the caller's write transaction."""
    if quota.empty:
        conn.execute("DELETE FROM quotas WHERE user_id = %s", (user_id,))
        return
    conn.execute(
        "INSERT INTO quotas (user_id, storage_limit, message_limit) "
        "VALUES (%s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET "
        "storage_limit = excluded.storage_limit, message_limit = excluded.message_limit",
        (user_id, quota.storage, quota.messages),
    )
