"""Selecting and leaving a mailbox: SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE, CHECK,
including the QRESYNC resynchronisation of SELECT (RFC 7162 §3.2.5)."""

from __future__ import annotations

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import commands as c
from pushmail.imap.encoder import mailbox as enc_mailbox
from pushmail.imap.errors import CommandFailed, ProtocolError
from pushmail.imap.selected import SelectedView, flags_lines
from pushmail.imap.session import Session, State
from pushmail.imap.types import SequenceSet
from pushmail.store.common import mailbox_object_id
from pushmail.store.interfaces import Mailbox, Store


def select(s: Session, cmd: c.Select, store: Store) -> None:
    had_view = s.view is not None
    if cmd.qresync is not None and "QRESYNC" not in s.enabled:
        # RFC 7162 §3.2.5: a tagged BAD; the old mailbox stays selected.
        raise ProtocolError("QRESYNC must be enabled first")
    s.view = None
    s.state = State.AUTHENTICATED
    if had_view:  # RFC 7162 §3.2.11 (and RFC 9051): whether or not QRESYNC is on
        s.untagged(b"OK [CLOSED] previous mailbox closed")
    mbox = s.mailbox(store, cmd.mailbox)
    info = store.select_info(mbox.id)
    view = SelectedView.open(store, mbox, cmd.readonly, info)
    if cmd.condstore:
        s.enabled.add("CONDSTORE")
    view.condstore = "CONDSTORE" in s.enabled
    view.qresync = "QRESYNC" in s.enabled
    view.rev2 = s.rev2
    view.uidonly = "UIDONLY" in s.enabled
    view.fetch_uid = s.notify is not None
    _announce(s, view, mbox, info.first_unseen_uid)
    if cmd.qresync is not None and cmd.qresync.uidvalidity == mbox.uidvalidity:
        _qresync(s, view, store, cmd.qresync)
    s.view = view
    s.state = State.SELECTED
    mode = "READ-ONLY" if cmd.readonly else "READ-WRITE"
    s.ok(cmd.tag, ("EXAMINE" if cmd.readonly else "SELECT") + " completed", mode)


def _announce(s: Session, view: SelectedView, mbox: Mailbox, first_unseen: int | None) -> None:
    for line in flags_lines(view.keywords, view.readonly):
        s.untagged(line)
    s.untagged(b"%d EXISTS" % view.exists)
    if view.rev2:  # RFC 9051 §6.3.2: LIST instead of RECENT and UNSEEN
        s.untagged(b'LIST () "/" ' + enc_mailbox(mbox.name))
    else:
        _rev1_counts(s, view, first_unseen)
    s.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % mbox.uidvalidity)
    s.untagged(b"OK [UIDNEXT %d] predicted next UID" % view.uidnext)
    s.untagged(b"OK [HIGHESTMODSEQ %d] highest" % view.modseq)
    s.untagged(b"OK [MAILBOXID (%s)] Ok" % mailbox_object_id(mbox.uidvalidity).encode())


def _rev1_counts(s: Session, view: SelectedView, first_unseen: int | None) -> None:
    s.untagged(b"%d RECENT" % len(view.recent))
    seq = None if first_unseen is None else view.seq_of(first_unseen)
    if seq is not None and not view.uidonly:  # UNSEEN is a message number (RFC 9586)
        s.untagged(b"OK [UNSEEN %d] first unseen" % seq)


def _qresync(s: Session, view: SelectedView, store: Store, q: c.QresyncParams) -> None:
    """Tell a reconnecting client what it missed since ``q.modseq``: the vanished
    UIDs (within its known UIDs) and every message changed since."""
    ch = store.changes_since(view.mailbox_id, q.modseq)
    largest = view.uidnext - 1
    known = q.known_uids
    if ch.expunged_complete:
        gone = list(ch.expunged)
    else:  # history trimmed: every known UID not present has vanished
        present = set(view.uids)
        floor = 0 if q.seq_match is None else _matched_floor(view, q.seq_match)
        candidates = range(1, largest + 1) if known is None else known.iter_within(largest)
        gone = [u for u in candidates if u > floor and u not in present]
    if known is not None:
        gone = [u for u in gone if known.contains(u, largest)]
    if gone:
        s.untagged(b"VANISHED (EARLIER) " + SequenceSet.from_ints(sorted(gone)).encode().encode())
    for line in view.announce_keywords(store, list(ch.changed)):
        s.untagged(line)
    for meta in ch.changed:
        seq = view.seq_of(meta.uid)
        if seq is not None:
            s.untagged(view.flags_response(seq, meta, with_uid=True))


def _matched_floor(view: SelectedView, match: tuple[SequenceSet, SequenceSet]) -> int:
    """RFC 7162 §3.2.5.2: the UID of the last of the client's (message number, UID)
    pairs that still hold, up to the first that does not. The client knows of every
    expunge up to that message, so VANISHED (EARLIER) need only start above it."""
    # Pairs past the mailbox's size or UIDNEXT cannot hold: no need to expand them.
    seqs = match[0].iter_within(len(view.uids))
    floor = 0
    for seq, uid in zip(seqs, match[1].iter_within(view.uidnext - 1), strict=False):
        if view.uids[seq - 1] != uid:
            break
        floor = uid
    return floor


def close(s: Session, cmd: c.Close, store: Store) -> None:
    view = s.require_view()
    if not view.readonly:
        gone = store.expunge(view.mailbox_id)
        if gone:
            _publish_expunge(s, store, view.mailbox_id)
    s.view = None
    s.state = State.AUTHENTICATED
    s.ok(cmd.tag, "CLOSE completed")


def unselect(s: Session, cmd: c.Unselect, store: Store) -> None:
    s.require_view()
    s.view = None
    s.state = State.AUTHENTICATED
    s.ok(cmd.tag, "UNSELECT completed")


def expunge(s: Session, cmd: c.Expunge, store: Store) -> None:
    view = s.require_view()
    if view.readonly:
        raise CommandFailed("mailbox is read-only", "READ-ONLY")
    only = None if cmd.uids is None else view.resolve(cmd.uids, uid=True)
    gone = store.expunge(view.mailbox_id, only)
    if gone:
        _publish_expunge(s, store, view.mailbox_id)
    if gone and "QRESYNC" in s.enabled:
        # RFC 7162 §3.2.7/§3.2.9: the new mailbox MODSEQ in the tagged OK, after
        # every change up to it has been reported (the VANISHED included, and any
        # held back before: the refresh's own HIGHESTMODSEQ would only repeat it).
        for line in view.refresh(store, allow_expunge=True):
            if not line.startswith(b"OK [HIGHESTMODSEQ "):
                s.untagged(line)
        s.ok(cmd.tag, "EXPUNGE completed", f"HIGHESTMODSEQ {view.reported_modseq}")
        return
    s.ok(cmd.tag, "EXPUNGE completed")


def _publish_expunge(s: Session, store: Store, mailbox_id: int) -> None:
    mbox = store.get_mailbox_by_id(mailbox_id)
    if mbox is not None:
        s.events.append(MailboxChanged(mbox.user_id, mbox.id, mbox.highestmodseq, "expunge"))


def check(s: Session, cmd: c.Check, store: Store) -> None:
    s.ok(cmd.tag, "CHECK completed")
