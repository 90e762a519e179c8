"""The selected mailbox as one session has reported it to its client.

The client's picture of a mailbox is a list of UIDs (position = sequence number) plus
the MODSEQ up to which it has been told of changes. The store is the truth: on every
refresh the view asks the store what changed since ``modseq`` and turns that into
untagged responses (EXISTS, RECENT, FETCH FLAGS, EXPUNGE/VANISHED). A lost or
duplicated hint therefore only delays a report, never corrupts the client's view.

Expunges are held back while a command that uses sequence numbers runs (RFC 3501
§7.4.1); the UIDs stay in the view, so numbering stays what the client believes,
until a command allows them to be sent. While they are held, the client may see
MODSEQs above the held expunge's (its own STORE, another client's flag change), and
a client that disconnected then and resynchronised from the highest MODSEQ it saw
would never hear of the expunge. So RFC 7162 §3.2 (example in §6) makes the server
report, while it holds an expunge, a HIGHESTMODSEQ below that expunge's MODSEQ.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

from pushmail.imap.encoder import flag_list
from pushmail.imap.errors import ProtocolError
from pushmail.imap.types import SequenceSet
from pushmail.store.interfaces import (
    MAX_KEYWORDS_PER_MAILBOX,
    Changes,
    Mailbox,
    MessageMeta,
    SelectInfo,
    Store,
)

_SYSTEM_FLAGS = (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")


def flags_lines(keywords: tuple[str, ...], readonly: bool) -> list[bytes]:
    """``FLAGS`` and ``OK [PERMANENTFLAGS]`` for a mailbox defining ``keywords``
    (RFC 3501 §7.2.6, §7.1). ``\\*`` (new keywords allowed) only below the cap."""
    words = b" ".join(_SYSTEM_FLAGS + tuple(k.encode() for k in keywords))
    if readonly:
        permanent = b"()"
    elif len(keywords) < MAX_KEYWORDS_PER_MAILBOX:
        permanent = b"(" + words + b" \\*)"
    else:
        permanent = b"(" + words + b")"
    return [b"FLAGS (" + words + b")", b"OK [PERMANENTFLAGS " + permanent + b"] ok"]


def new_mail_lines(exists: int, recent: int, rev2: bool) -> list[bytes]:
    """What tells a client of new messages (without ``* `` and CRLF): ``EXISTS``,
    then ``RECENT``, which IMAP4rev2 no longer has (RFC 9051 §E). The one rule for
    a live session (``SelectedView.refresh``) and a hibernated one."""
    if rev2:
        return [b"%d EXISTS" % exists]
    return [b"%d EXISTS" % exists, b"%d RECENT" % recent]


@dataclass(slots=True)
class SelectedView:
    mailbox_id: int
    name: str
    uidvalidity: int
    readonly: bool
    uids: array[int]  # sequence number n is uids[n - 1]
    modseq: int  # every change up to here has been reported
    uidnext: int  # every message below this UID has been reported as existing
    # UIDs \Recent for this session, ascending: 4 bytes each (a set of ints costs
    # ~60), which matters when a first SELECT claims a whole filled mailbox.
    recent: array[int] = field(default_factory=lambda: array("I"))
    recent_floor: int = 0  # UIDs >= this arriving later are \Recent for us
    pending_expunge: set[int] = field(default_factory=set)  # gone, not yet reported
    # While ``pending_expunge`` is not empty: ``modseq`` as it was just before the
    # first held expunge was found, hence below that expunge's MODSEQ.
    held_below: int = 0
    own_flag_reports: dict[int, int] = field(default_factory=dict)  # uid -> modseq sent
    condstore: bool = False  # send MODSEQ with unsolicited FETCH FLAGS
    fetch_uid: bool = False  # NOTIFY is on: unsolicited FETCH carries UID (RFC 5465 §5.1)
    qresync: bool = False  # VANISHED instead of EXPUNGE
    rev2: bool = False  # ENABLE IMAP4rev2: no \Recent, no RECENT (RFC 9051 §E)
    # ENABLE UIDONLY (RFC 9586): ``* uid UIDFETCH`` for FETCH, VANISHED for EXPUNGE.
    uidonly: bool = False
    # UIDONLY between commands: ``uids`` let go (``shed``), ``exists`` kept here;
    # ``load`` reads the map again when a command or a refresh needs it.
    shed_count: int | None = None
    # The keywords announced to the client in FLAGS: a FETCH may show no other
    # (RFC 3501 §7.2.6). A prefix of the store's list, which only grows.
    keywords: tuple[str, ...] = ()

    # -- building -------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, mailbox: Mailbox, readonly: bool, info: SelectInfo) -> SelectedView:
        """Take a fresh view from ``info`` (read after ``mailbox``), keeping its UID
        array rather than a copy. The listing may already include changes made after
        the mailbox row was read; those then show up once as harmless FLAGS updates."""
        # EXAMINE shows what is \Recent without taking it from the session that
        # will SELECT (RFC 3501 §6.3.2: it must not make messages lose \Recent).
        floor = info.recent_floor if readonly else store.claim_recent(mailbox.id)
        uids = info.uids
        recent = uids[bisect_left(uids, floor) :] if floor else array("I")
        uidnext = max(mailbox.uidnext, info.uidnext, (uids[-1] + 1) if uids else 1)
        return cls(
            mailbox_id=mailbox.id,
            name=mailbox.name,
            uidvalidity=mailbox.uidvalidity,
            readonly=readonly,
            uids=uids,
            modseq=max(mailbox.highestmodseq, info.highestmodseq),
            uidnext=uidnext,
            recent=recent,
            recent_floor=uidnext,
            keywords=info.keywords,
        )

    # -- numbering ------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids) if self.shed_count is None else self.shed_count

    def shed(self) -> None:
        """Between commands, a UIDONLY client holds no message numbers (RFC 9586):
        let the UID array go (4 bytes a message) and keep only the count. Not while
        an expunge is held back: then the map differs from the store's list."""
        if self.uidonly and self.shed_count is None and not self.pending_expunge:
            self.shed_count = len(self.uids)
            self.uids = array("I")

    def load(self, store: Store, ch: Changes | None = None) -> None:
        """The UID array again after ``shed``: what the client was told of is every
        UID below ``uidnext`` still present, plus those expunged after ``modseq``
        (not yet reported), as a hibernated session is rebuilt (``net/hibernated``).
        ``ch``: the changes since ``modseq`` if already read."""
        if self.shed_count is None:
            return
        listed = store.uids(self.mailbox_id)
        uids = array("I", listed[: bisect_left(listed, self.uidnext)])
        if ch is None:
            ch = store.changes_since(self.mailbox_id, self.modseq)
        gone = [u for u in ch.expunged if u < self.uidnext]
        if gone:
            uids = array("I", sorted(set(uids).union(gone)))
        self.uids = uids
        self.shed_count = None

    def seq_of(self, uid: int) -> int | None:
        i = _index(self.uids, uid)
        return None if i is None else i + 1

    def resolve(self, seqset: SequenceSet, uid: bool, saved: tuple[int, ...] = ()) -> list[int]:
        """The UIDs a sequence set names, ascending. For a UID set, ``*`` is the
        largest UID in the view; UIDs not in the view are left out."""
        if seqset.saved:
            present = set(self.uids)
            return [u for u in saved if u in present]
        if not uid:
            # RFC 3501 §9 (seq-number): a number above EXISTS is a client error (BAD).
            # ``*`` is always in range, even in an empty mailbox, where it names none.
            top = max((n for r in seqset.ranges for n in (r.start, r.end) if n), default=0)
            if top > len(self.uids):
                raise ProtocolError(f"no message {top}: the mailbox has {len(self.uids)}")
        if not self.uids:
            return []
        if uid:
            return seqset.select_from(self.uids, self.uids[-1])
        return [self.uids[n - 1] for n in seqset.iter_within(len(self.uids))]

    def flags_of(self, meta: MessageMeta) -> frozenset[str]:
        """A message's flags as this session reports them (with \\Recent)."""
        if not self.rev2 and _index(self.recent, meta.uid) is not None:
            return meta.flags | {"\\Recent"}
        return meta.flags

    # -- reporting changes ----------------------------------------------------
    def refresh(self, store: Store, allow_expunge: bool) -> list[bytes]:
        """Untagged response data (without ``* `` and CRLF) for every change since
        the last report, in an order that keeps sequence numbers right."""
        ch = store.changes_since(self.mailbox_id, self.modseq)
        if self.shed_count is not None and (
            ch.expunged
            or not ch.expunged_complete
            or any(m.uid < self.uidnext for m in ch.changed)
        ):  # a shed UIDONLY view needs its map only for expunges and flag changes
            self.load(store, ch)
        # New keywords first: the FETCHes below may show them (RFC 3501 §7.2.6).
        out = self.keywords_changed(ch.keywords)
        was_holding = bool(self.pending_expunge)
        if ch.expunged_complete:  # a lookup per expunged UID, not a set of them all
            self.pending_expunge.update(u for u in ch.expunged if _index(self.uids, u) is not None)
        else:  # expunge history trimmed since our modseq: compare the UID lists
            self.pending_expunge.update(set(self.uids).difference(store.uids(self.mailbox_id)))
        if self.pending_expunge and not was_holding:
            self.held_below = self.modseq  # every change up to here is reported
        if allow_expunge and self.pending_expunge:
            out.extend(self._report_expunges())
        first_new = self.uidnext  # _append_new moves uidnext past the new ones
        new = [m for m in ch.changed if m.uid >= first_new]
        if new:
            self._append_new(store, new)
            out.extend(new_mail_lines(self.exists, len(self.recent), self.rev2))
        for meta in ch.changed:  # new messages need no FETCH: EXISTS announced them
            if meta.uid >= first_new or meta.uid in self.pending_expunge:
                continue
            if self.own_flag_reports.get(meta.uid) == meta.modseq:
                continue
            seq = self.seq_of(meta.uid)
            if seq is not None:
                out.append(self.flags_response(seq, meta, with_uid=self.unsolicited_uid))
        self.own_flag_reports.clear()
        self.modseq = max(self.modseq, ch.highestmodseq)
        self.uidnext = max(self.uidnext, ch.uidnext)
        if self.condstore and (was_holding or self.pending_expunge):
            out.append(self._highestmodseq_note())
        return out

    @property
    def reported_modseq(self) -> int:
        """The HIGHESTMODSEQ this client may cache now: ``modseq``, except while an
        expunge is held back, when it must stay below that expunge's MODSEQ so that
        a resynchronisation from it still reports the expunge (RFC 7162 §3.2, §6)."""
        return self.held_below if self.pending_expunge else self.modseq

    def _highestmodseq_note(self) -> bytes:
        """``OK [HIGHESTMODSEQ n]`` at the end of a refresh that holds expunges back
        or has just released them. A CONDSTORE client takes the highest MODSEQ of
        the FETCHes since the last tagged reply as its HIGHESTMODSEQ unless a
        HIGHESTMODSEQ code came meanwhile, which it must use even when lower (§6).
        Sent after every command while holding (that command may have sent higher
        MODSEQs), and once on release so the client's value catches up (the RFC's
        ``A153 OK [HIGHESTMODSEQ 104]``)."""
        if self.pending_expunge:
            return b"OK [HIGHESTMODSEQ %d] expunges held back" % self.held_below
        return b"OK [HIGHESTMODSEQ %d] highest" % self.modseq

    @property
    def unsolicited_uid(self) -> bool:
        """Whether an unsolicited FETCH must carry UID: under QRESYNC or CONDSTORE
        (RFC 7162 §3.2.4), IMAP4rev2 (RFC 9051 §6.3.13) and NOTIFY (RFC 5465 §5.1)."""
        return self.qresync or self.condstore or self.rev2 or self.fetch_uid

    def fetch_head(self, seq: int, uid: int) -> bytes:
        """``n FETCH `` for a message, or ``uid UIDFETCH `` under UIDONLY, whose
        responses name messages by UID only (RFC 9586 §3.3)."""
        if self.uidonly:
            return b"%d UIDFETCH " % uid
        return b"%d FETCH " % seq

    def flags_response(self, seq: int, meta: MessageMeta, with_uid: bool = False) -> bytes:
        parts = []
        if with_uid and not self.uidonly:  # UIDFETCH leads with the UID already
            parts.append(b"UID %d" % meta.uid)
        parts.append(b"FLAGS " + flag_list(self.flags_of(meta)))
        if self.condstore:
            parts.append(b"MODSEQ (%d)" % meta.modseq)
        return self.fetch_head(seq, meta.uid) + b"(" + b" ".join(parts) + b")"

    def _append_new(self, store: Store, new: list[MessageMeta]) -> None:
        if not self.readonly:
            # Only one session may see a message as \Recent (RFC 3501 §2.3.2).
            self.recent_floor = max(self.recent_floor, store.claim_recent(self.mailbox_id))
        for meta in new:
            if meta.uid >= self.recent_floor and not self.readonly:
                self.recent.append(meta.uid)  # above every UID held: stays ascending
            if self.shed_count is None:
                self.uids.append(meta.uid)
            else:  # no map kept: the count is all (``shed``)
                self.shed_count += 1
        self.uidnext = new[-1].uid + 1

    def _report_expunges(self) -> list[bytes]:
        gone = sorted(self.pending_expunge)
        self.pending_expunge.clear()
        if self.qresync or self.uidonly:  # UIDONLY: VANISHED even without QRESYNC
            for uid in gone:
                self._remove(uid)
            return [b"VANISHED " + SequenceSet.from_ints(gone).encode().encode()]
        out = []
        for uid in gone:
            seq = self._remove(uid)
            if seq is not None:
                out.append(b"%d EXPUNGE" % seq)
        return out

    def _remove(self, uid: int) -> int | None:
        seq = self.seq_of(uid)
        if seq is not None:
            del self.uids[seq - 1]
            i = _index(self.recent, uid)
            if i is not None:
                del self.recent[i]
        return seq

    def keywords_changed(self, keywords: tuple[str, ...]) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS when the mailbox's keyword list ``keywords``
        holds some the client has not been told of; nothing otherwise."""
        if len(keywords) <= len(self.keywords):  # the list only grows
            return []
        self.keywords = keywords
        return flags_lines(keywords, self.readonly)

    def announce_keywords(self, store: Store, metas: list[MessageMeta]) -> list[bytes]:
        """Before a FETCH shows the flags of ``metas`` (read after the last refresh):
        FLAGS for any keyword among them that the client has not been told of."""
        known = set(self.keywords)
        for meta in metas:
            for flag in meta.flags:
                if flag[0] != "\\" and flag not in known:
                    return self.keywords_changed(store.keywords(self.mailbox_id))
        return []

    def note_own_flags(self, metas: list[MessageMeta]) -> None:
        """Remember flag changes this session already reported (STORE without
        .SILENT), so the next refresh does not repeat them."""
        for m in metas:
            self.own_flag_reports[m.uid] = m.modseq


def _index(uids: array[int], uid: int) -> int | None:
    """Where ``uid`` is in the ascending ``uids``, or None."""
    i = bisect_left(uids, uid)
    return i if i < len(uids) and uids[i] == uid else None
