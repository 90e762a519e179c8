"""Per-user quotas (RFC 9208 resources STORAGE and MESSAGE), shared by both stores.

A user has at most one quota row (``quotas``): a storage limit in octets and a
message-count limit, either NULL for "no limit". The usage is not counted per
delivery: every mailbox row carries ``used_messages`` and ``used_bytes``, kept by
triggers on ``messages`` (whatever inserts or deletes a message, a cascade too),
so a user's usage is a sum over their few mailbox rows.

The check runs inside the transaction that inserts (``QuotaGate``): SQLite's
``BEGIN IMMEDIATE`` serialises writers, PostgreSQL's gate locks the quota rows
``FOR UPDATE`` first, so two deliveries cannot both pass a nearly full quota.
Users without a quota row pay one primary-key look-up per transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pushmail.store.interfaces import OverQuota, Quota


@dataclass(slots=True)
class Room:
    """One user's limits and usage as seen inside one write transaction, with
    what this transaction has admitted so far."""

    quota: Quota
    storage: int
    messages: int
    pending_storage: int = field(default=0)
    pending_messages: int = field(default=0)

    def fits(self, size: int, count: int) -> bool:
        q = self.quota
        if q.storage is not None and self.storage + self.pending_storage + size > q.storage:
            return False
        return q.messages is None or self.messages + self.pending_messages + count <= q.messages

    def take(self, size: int, count: int) -> None:
        self.pending_storage += size
        self.pending_messages += count


def admit(
    wanted: Sequence[tuple[int, int, int]], rooms: Mapping[int, Room | None], partial: bool
) -> list[bool]:
    """For (mailbox id, octets, messages) in order: whether each fits its owner's
    quota, counting the earlier admitted ones. ``rooms`` maps each mailbox id to its
    owner's ``Room`` (one object per user), or None when the owner has no quota.
    Without ``partial`` the first that does not fit raises ``OverQuota``."""
    out: list[bool] = []
    for mailbox_id, size, count in wanted:
        room = rooms.get(mailbox_id)
        if room is None:
            out.append(True)
            continue
        if not room.fits(size, count):
            if not partial:
                raise OverQuota(over_quota_text(room.quota, size, count))
            out.append(False)
            continue
        room.take(size, count)
        out.append(True)
    return out


def over_quota_text(quota: Quota, size: int, count: int) -> str:
    del size, count  # the text names the limits, not the message
    parts = []
    if quota.storage is not None:
        parts.append(f"storage {format_size(quota.storage)}")
    if quota.messages is not None:
        parts.append(f"{quota.messages} messages")
    return "quota exceeded (" + ", ".join(parts) + ")"


def rooms_by_mailbox(
    rows: Iterable[tuple[int, int, int | None, int | None]],
    usage: Mapping[int, tuple[int, int]],
) -> dict[int, Room | None]:
    """Build the gate's map from rows (mailbox id, user id, storage, messages) of
    the users that have a quota, and their usage (user id → (octets, messages))."""
    per_user: dict[int, Room] = {}
    out: dict[int, Room | None] = {}
    for mailbox_id, user_id, storage, messages in rows:
        room = per_user.get(user_id)
        if room is None:
            used = usage.get(user_id, (0, 0))
            room = per_user[user_id] = Room(Quota(storage, messages), used[0], used[1])
        out[mailbox_id] = room
    return out


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``100M`` → octets (binary units, as Dovecot's ``quota_rule``); plain digits
    are octets."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a size: {text!r} (e.g. 500K, 100M, 2G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def format_size(octets: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if octets and octets % _UNITS[unit] == 0:
            return f"{octets // _UNITS[unit]}{unit}"
    return str(octets)
