"""Value rules every store backend shares: flag spelling, mailbox names, dates.

Kept out of the backends so SQLite and a later PostgreSQL agree byte for byte on
what they store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pushmail.store.interfaces import (
    HIERARCHY_DELIMITER,
    MAX_KEYWORDS_PER_MAILBOX,
    Conflict,
    KeywordLimit,
)

_SYSTEM_FLAGS = {
    f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}


def canonical_flags(flags: Iterable[str]) -> frozenset[str]:
    """System flags in their canonical spelling, ``\\Recent`` dropped: it is session
    state, never stored (RFC 3501 §2.3.2)."""
    out: set[str] = set()
    for flag in flags:
        low = flag.lower()
        if low != "\\recent":
            out.add(_SYSTEM_FLAGS.get(low, flag))
    return frozenset(out)


def is_keyword(flag: str) -> bool:
    """A keyword, as opposed to a system flag (which starts with a backslash)."""
    return not flag.startswith("\\")


def extend_keywords(defined: tuple[str, ...], flags: Iterable[str]) -> tuple[str, ...]:
    """``defined`` with the keywords of ``flags`` it lacks appended (sorted among
    themselves, so one command defines them in a stable order). KeywordLimit if that
    would pass MAX_KEYWORDS_PER_MAILBOX; ``defined`` itself when nothing is new."""
    known = set(defined)
    new = sorted({f for f in flags if is_keyword(f) and f not in known})
    if not new:
        return defined
    if len(defined) + len(new) > MAX_KEYWORDS_PER_MAILBOX:
        raise KeywordLimit(f"a mailbox holds at most {MAX_KEYWORDS_PER_MAILBOX} keywords")
    return defined + tuple(new)


def mailbox_object_id(uidvalidity: int) -> str:
    """The MAILBOXID of RFC 8474: the mailbox's UIDVALIDITY, which comes from a
    global counter that never repeats (so no two mailboxes, even of two users or one
    deleted and re-created, share one) and which RENAME keeps, as the RFC asks.
    RENAME INBOX makes a new mailbox, with a new UIDVALIDITY and so a new id."""
    return f"F{uidvalidity:08x}"


def email_object_id(sha256: bytes) -> str:
    """The EMAILID of RFC 8474: from the SHA-256 of the text, which the store keeps
    once however many mailboxes hold it, so a COPY or MOVE keeps it, and so do
    identical deliveries (the same EMAILID for identical texts is allowed). 96
    bits: collisions are not a practical concern; an objectid may have 255."""
    return "M" + sha256[:12].hex()


def mailbox_name(name: str) -> str:
    """INBOX is case-insensitive, every other name is not; reject empty levels."""
    if name.upper() == "INBOX":
        return "INBOX"
    if not name or any(part == "" for part in name.split(HIERARCHY_DELIMITER)):
        raise Conflict(f"invalid mailbox name {name!r}")
    return name


def split_date(when: datetime | None, now: int) -> tuple[int, int]:
    """(unix seconds, minutes east of UTC); a naive datetime is taken as UTC."""
    if when is None:
        return now, 0
    offset = when.utcoffset()
    if offset is None:
        return int(when.replace(tzinfo=UTC).timestamp()), 0
    return int(when.timestamp()), int(offset.total_seconds()) // 60
