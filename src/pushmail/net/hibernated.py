"""The record a hibernated session shrinks to (``net/hibernate.py``), and what is
made from it again: a view of the mailbox when the session resumes, the bytes it
travels as to another worker (``net/homes.py``), its TLS state's last words.

It is its own module because two owners use it: the worker's ``Hibernator``, which
keeps thousands of them, and the home-worker channel, which moves them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Protocol

from pushmail.imap.selected import SelectedView
from pushmail.net.homes import RecordFields
from pushmail.net.imap_login import IdleConn
from pushmail.store.interfaces import Store
from pushmail.transport.tls_layer import TlsState
from pushmail.transport.tls_records import RecordLayer

# Hibernated.bits
CONDSTORE = 1
QRESYNC = 2
LOOPBACK = 4
READONLY = 8
REV2 = 16
UIDONLY = 32  # RFC 9586: wakes to UIDFETCH/VANISHED

_NO_RECENT: array[int] = array("I")


class Owner(Protocol):
    """Who keeps the records (``net/hibernate.Hibernator``): not imported, so that
    the two modules do not import each other."""

    def wake(self, rec: Hibernated) -> None: ...


class Hibernated:
    """Everything an idling session needs to be resumed, and nothing more."""

    __slots__ = (
        "bits",
        "exists",
        "fd",
        "keywords",
        "last_activity",
        "last_write",
        "mailbox_id",
        "modseq",
        "owner",
        "recent",
        "tag",
        "tls",
        "uidnext",
        "user_id",
        "wheel_slot",
    )

    def __init__(self, fd: int, conn: IdleConn, owner: Owner) -> None:
        s = conn.session
        assert s.user is not None and s.view is not None
        v = s.view
        self.fd = fd
        self.owner = owner
        self.tls: TlsState | None = (
            conn.transport.get_extra_info("tls_state") if conn.transport else None
        )
        self.user_id = s.user.id
        self.mailbox_id = v.mailbox_id
        self.tag = conn.idle_tag
        self.modseq = v.modseq
        self.uidnext = v.uidnext
        self.exists = v.exists
        self.keywords = len(v.keywords)  # announced: a prefix of the mailbox's list
        # 4 bytes per \Recent UID (a tuple of ints costs ~36); most have none and
        # share one empty array, which is only ever replaced, never changed.
        self.recent = array("I", v.recent) if v.recent else _NO_RECENT
        self.bits = (
            (CONDSTORE if v.condstore else 0)
            | (QRESYNC if v.qresync else 0)
            | (LOOPBACK if s.loopback else 0)
            | (READONLY if v.readonly else 0)
            | (REV2 if v.rev2 else 0)
            | (UIDONLY if v.uidonly else 0)
        )
        self.last_activity = conn.last_activity
        self.last_write = conn.last_write
        self.wheel_slot = 0  # see Hibernator._file

    @classmethod
    def restore(cls, fd: int, owner: Owner, f: RecordFields) -> Hibernated:
        """A record sent by another worker (``net/homes.py``); ``ValueError`` if its
        TLS state cannot be restored."""
        rec = cls.__new__(cls)
        rec.fd = fd
        rec.owner = owner
        rec.tls = TlsState.from_records(RecordLayer.restore(f.tls)) if f.tls else None
        rec.user_id = f.user_id
        rec.mailbox_id = f.mailbox_id
        rec.tag = f.tag
        rec.modseq = f.modseq
        rec.uidnext = f.uidnext
        rec.exists = f.exists
        rec.keywords = f.keywords
        rec.recent = f.recent if f.recent else _NO_RECENT
        rec.bits = f.bits
        rec.last_activity = f.last_activity
        rec.last_write = f.last_write
        rec.wheel_slot = 0
        return rec

    def fields(self) -> RecordFields | None:
        """The record as it travels to another worker; ``None`` if it cannot leave
        this process (a TLS session still inside OpenSSL, or between records)."""
        tls = None
        if self.tls is not None:
            records = self.tls.records
            tls = records.export() if records is not None else None
            if tls is None:
                return None
        return RecordFields(
            self.user_id,
            self.mailbox_id,
            self.modseq,
            self.uidnext,
            self.exists,
            self.bits,
            self.last_activity,
            self.last_write,
            self.tag,
            self.recent,
            tls,
            self.keywords,
        )

    def wake(self) -> None:
        """The hub's call: a hint for our mailbox (checked in one batch)."""
        self.owner.wake(self)


def last_words(rec: Hibernated, data: bytes) -> bytes:
    """Best-effort last words: encrypted under TLS (errors ignored, we are closing)."""
    if rec.tls is None:
        return data
    try:
        return rec.tls.encrypt(data)
    except Exception:
        return b""


def rebuild_view(store: Store, rec: Hibernated, name: str, uidvalidity: int) -> SelectedView:
    """The client's sequence-number map as of (UIDNEXT, MODSEQ): the UIDs below
    UIDNEXT still present, plus those expunged after MODSEQ (not yet reported)."""
    listed = store.uids(rec.mailbox_id)  # ascending: cut at UIDNEXT, no per-UID test
    uids = array("I", listed[: bisect_left(listed, rec.uidnext)])
    ch = store.changes_since(rec.mailbox_id, rec.modseq)
    gone = [u for u in ch.expunged if u < rec.uidnext]
    if gone:  # rare: expunged while asleep and not yet reported
        uids = array("I", sorted(set(uids).union(gone)))
    return SelectedView(
        mailbox_id=rec.mailbox_id,
        name=name,
        uidvalidity=uidvalidity,
        readonly=bool(rec.bits & READONLY),
        uids=uids,
        modseq=rec.modseq,
        uidnext=rec.uidnext,
        recent=array("I", rec.recent),
        recent_floor=rec.uidnext,
        condstore=bool(rec.bits & CONDSTORE),
        qresync=bool(rec.bits & QRESYNC),
        rev2=bool(rec.bits & REV2),
        uidonly=bool(rec.bits & UIDONLY),
        keywords=ch.keywords[: rec.keywords],  # the refresh announces the rest
    )
