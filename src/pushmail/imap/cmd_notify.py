"""NOTIFY (RFC 5465): one connection hears about many mailboxes.

``notify`` records the client's event groups in the session and asks the driver
(``Action("notify")``) to listen to all of the user's change hints. For each hint
the driver calls ``event_lines`` on the store thread whenever no command is running
(§3: notifications are not limited to IDLE):

- the selected mailbox goes through the normal refresh (EXISTS, FETCH FLAGS,
  EXPUNGE/VANISHED), plus the FETCH items the client named for MessageNew, so a
  phone gets From and Subject without another round trip;
- another mailbox gets one ``STATUS`` (MESSAGES UIDNEXT UIDVALIDITY UNSEEN, and
  HIGHESTMODSEQ
  with CONDSTORE, as §5.2 and §5.5 ask), however many hints arrived for it meanwhile;
- MailboxName and SubscriptionChange become ``LIST`` responses, computed by
  comparing with what the client was last told.
"""

from __future__ import annotations

from functools import partial

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import commands as c
from pushmail.imap.encoder import mailbox as enc_mailbox
from pushmail.imap.errors import CommandFailed, ImapError
from pushmail.imap.fetch_render import FetchContext, render_fetch
from pushmail.imap.notify import EVENT_OF_KIND, NotifyState, hint_key
from pushmail.imap.selected import SelectedView
from pushmail.imap.session import Action, Session
from pushmail.store.interfaces import HIERARCHY_DELIMITER, Mailbox, Store

_OFFERED = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"
_DELIM = b'"' + HIERARCHY_DELIMITER.encode() + b'"'


def notify(s: Session, cmd: c.Notify, store: Store) -> Action:
    if cmd.unsupported:
        raise CommandFailed("unsupported event " + cmd.unsupported[0], "BADEVENT " + _OFFERED)
    if cmd.groups is None:
        s.notify = None
        if s.view is not None:
            s.view.fetch_uid = False
        s.ok(cmd.tag, "NOTIFY completed")
        return Action("notify", cmd.tag)
    state = NotifyState(cmd.groups)
    uid = s.require_user().id
    if state.wants("MailboxName") or state.wants("SubscriptionChange"):
        state.names = {b.id: b.name for b in store.list_mailboxes(uid)}
        state.subscribed = set(store.subscriptions(uid))
    s.notify = state
    if s.view is not None:  # §5.1: unsolicited FETCH now carries UID
        s.view.fetch_uid = True
    if cmd.status:
        for box in store.list_mailboxes(uid):
            if s.view is not None and box.id == s.view.mailbox_id:
                continue
            group = state.group_for(box.name, lambda: set(store.subscriptions(uid)))
            if group is not None and group.events:
                s.untagged(_status(s, store, box))
    s.ok(cmd.tag, "NOTIFY completed")
    return Action("notify", cmd.tag)


OVERFLOW = b"* OK [NOTIFICATIONOVERFLOW] too many notifications; NOTIFY is off\r\n"


def overflow(s: Session) -> bytes:
    """RFC 5465 §5.8: the server will not keep up with this session's NOTIFY, so it
    acts as if NOTIFY NONE had just been received and says so in an untagged
    ``OK [NOTIFICATIONOVERFLOW]``. The client can catch up (STATUS, NOOP) and ask
    again with NOTIFY SET. The driver decides when (see ``Limits``)."""
    s.notify = None
    if s.view is not None:
        s.view.fetch_uid = False
    return OVERFLOW


def event_lines(s: Session, events: list[MailboxChanged], store: Store) -> bytes:
    """On the store thread, with no command running: the untagged responses that
    ``events`` call for under the session's NOTIFY groups."""
    state = s.notify
    if state is None or s.user is None:
        return b""
    out: list[bytes] = []
    done: set[tuple[int, str]] = set()
    for ev in events:
        key = hint_key(ev)
        if key in done or ev.user_id != s.user.id:
            continue
        done.add(key)
        if ev.kind == "mailboxes":
            out.extend(_mailbox_names(s, state, store))
        elif ev.kind == "subscriptions":
            out.extend(_subscriptions(s, state, store))
        elif s.view is not None and ev.mailbox_id == s.view.mailbox_id:
            out.extend(_selected(s, state, s.view, store))
            s.view.shed()
        else:
            out.extend(_other(s, state, ev, store))
    return b"".join(b"* " + line + b"\r\n" for line in out)


def idle_refresh(s: Session, view: SelectedView, store: Store) -> list[bytes]:
    """IDLE's report of a change in the selected mailbox. Under NOTIFY it is the
    one of §5.1, FETCH items of MessageNew included: IDLE is allowed with NOTIFY
    (§3), and the plain refresh it used to make reported the EXISTS alone, after
    which NOTIFY found nothing new and the items were never sent."""
    state = s.notify
    try:
        if state is None or _selected_group(state, view, store) is None:
            return view.refresh(store, True)
        return _selected(s, state, view, store)
    finally:
        view.shed()  # UIDONLY: no map kept while idling


def _selected_group(state: NotifyState, view: SelectedView, store: Store) -> c.NotifyGroup | None:
    """The group that governs the selected mailbox, if it asks for any event."""
    group = state.selected_group()
    if group is None:
        mbox = store.get_mailbox_by_id(view.mailbox_id)
        if mbox is not None:
            group = state.group_for(mbox.name, lambda: set(store.subscriptions(mbox.user_id)))
    return group if group is not None and group.events else None


def _selected(s: Session, state: NotifyState, view: SelectedView, store: Store) -> list[bytes]:
    group = _selected_group(state, view, store)
    if group is None:
        return []  # reported at the next command, as without NOTIFY
    first_new = view.uidnext
    lines = view.refresh(store, allow_expunge=group.kind != "SELECTED-DELAYED")
    if all(line.startswith(b"OK [HIGHESTMODSEQ ") for line in lines):
        lines = []  # nothing new (a hint of our own change): no MODSEQ owes a note
    if group.fetch and view.uidnext > first_new:
        view.load(store)  # a shed UIDONLY view: the new UIDs are in the map only
        new = [u for u in view.uids if u >= first_new]
        if new:
            lines.extend(_fetch_new(view, store, new, group.fetch))
    return lines


def _fetch_new(
    view: SelectedView, store: Store, uids: list[int], items: tuple[c.FetchAtt, ...]
) -> list[bytes]:
    """FETCH responses for new messages with the items of ``MessageNew (...)``.
    They never set \\Seen: an unsolicited response must not change the mailbox."""
    atts = [a if isinstance(a, str) else _peek(a) for a in items]
    if "UID" not in atts and not view.uidonly:  # UIDFETCH leads with it (RFC 9586)
        atts.insert(0, "UID")
    mid = view.mailbox_id
    metas = store.get_messages(mid, uids)
    out = view.announce_keywords(store, metas) if "FLAGS" in atts else []
    emailids = store.email_ids(mid, uids) if "EMAILID" in atts else {}
    saved = store.save_dates(mid, uids) if "SAVEDATE" in atts else {}
    for meta in metas:
        seq = view.seq_of(meta.uid)
        if seq is None:
            continue
        ctx = FetchContext(
            seq=seq,
            uid=meta.uid,
            flags=view.flags_of(meta),
            internaldate=meta.internaldate,
            size=meta.size,
            modseq=meta.modseq,
            get_raw=partial(store.get_raw, mid, meta.uid),
            get_cache=partial(store.get_cache, mid, meta.uid),
            emailid=emailids.get(meta.uid),
            savedate=saved.get(meta.uid),
        )
        try:
            out.append(view.fetch_head(seq, meta.uid) + render_fetch(atts, ctx))
        except ImapError:  # e.g. BINARY of an unknown encoding: the client can ask
            body = b"()" if view.uidonly else b"(UID %d)" % meta.uid
            out.append(view.fetch_head(seq, meta.uid) + body)
    return out


def _peek(att: c.FetchBody) -> c.FetchBody:
    return c.FetchBody(att.section, att.partial, True, att.binary, att.size_only)


def _other(s: Session, state: NotifyState, ev: MailboxChanged, store: Store) -> list[bytes]:
    event = EVENT_OF_KIND.get(ev.kind)
    mbox = store.get_mailbox_by_id(ev.mailbox_id)
    if event is None or mbox is None or mbox.user_id != ev.user_id:
        return []
    group = state.group_for(mbox.name, lambda: set(store.subscriptions(mbox.user_id)))
    if group is None or event not in group.events:
        return []
    return [_status(s, store, mbox)]


def _status(s: Session, store: Store, box: Mailbox) -> bytes:
    counts = store.counts(box.id)
    vals = b"MESSAGES %d UIDNEXT %d UIDVALIDITY %d UNSEEN %d" % (
        counts.messages,
        box.uidnext,
        box.uidvalidity,
        counts.unseen,
    )
    if "CONDSTORE" in s.enabled:
        vals += b" HIGHESTMODSEQ %d" % box.highestmodseq
    return b"STATUS " + enc_mailbox(box.name) + b" (" + vals + b")"


def _list(name: str, attrs: bytes, extra: bytes = b"") -> bytes:
    return b"LIST (" + attrs + b") " + _DELIM + b" " + enc_mailbox(name) + extra


def _mailbox_names(s: Session, state: NotifyState, store: Store) -> list[bytes]:
    """LIST responses for mailboxes created, deleted or renamed since last told."""
    if not state.wants("MailboxName"):
        return []
    uid = s.require_user().id
    now = {b.id: b.name for b in store.list_mailboxes(uid)}
    subs = lambda: state.subscribed  # noqa: E731
    out = []
    for mid, name in sorted(now.items(), key=lambda kv: kv[1]):
        old = state.names.get(mid)
        group = state.group_for(name, subs)
        if group is None or "MailboxName" not in group.events or old == name:
            continue
        if old is None:
            out.append(_list(name, b""))
        else:
            out.append(_list(name, b"", b' ("OLDNAME" (' + enc_mailbox(old) + b"))"))
    for mid, name in state.names.items():
        group = state.group_for(name, subs)
        if mid not in now and group is not None and "MailboxName" in group.events:
            out.append(_list(name, b"\\NonExistent"))
    state.names = now
    return out


def _subscriptions(s: Session, state: NotifyState, store: Store) -> list[bytes]:
    if not state.wants("SubscriptionChange"):
        return []
    now = set(store.subscriptions(s.require_user().id))
    out = [_list(n, b"\\Subscribed") for n in sorted(now - state.subscribed)]
    out += [_list(n, b"") for n in sorted(state.subscribed - now)]
    state.subscribed = now
    return out
