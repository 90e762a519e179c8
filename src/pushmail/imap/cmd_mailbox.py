"""Mailbox commands: CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB, STATUS, APPEND.

Every name is looked up within the logged-in user's own mailboxes only; the store
API takes the user id from the session, never from the client, so no name can reach
another user's data.
"""

from __future__ import annotations

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import commands as c
from pushmail.imap.encoder import mailbox as enc_mailbox
from pushmail.imap.errors import CommandFailed
from pushmail.imap.listing import matches, names_with_children, subscribed_matches
from pushmail.imap.mutf7 import InvalidName
from pushmail.imap.session import Session
from pushmail.store.common import mailbox_object_id
from pushmail.store.interfaces import (
    HIERARCHY_DELIMITER,
    Mailbox,
    MailboxCounts,
    Store,
)

_DELIM = b'"' + HIERARCHY_DELIMITER.encode() + b'"'
_SPECIAL_USES = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)


def _valid_name(name: str) -> str:
    if isinstance(name, InvalidName):
        raise CommandFailed("mailbox name is not valid modified UTF-7", "CANNOT")
    name = name.rstrip(HIERARCHY_DELIMITER)
    if not name or any(ch in name for ch in "*%") or "//" in name:
        raise CommandFailed("invalid mailbox name", "CANNOT")
    if any(ord(ch) < 32 for ch in name) or name.startswith(HIERARCHY_DELIMITER):
        raise CommandFailed("invalid mailbox name", "CANNOT")
    return name


def _check_shape(s: Session, name: str) -> None:
    """NO [LIMIT] for a name over the configured length or depth (issue 15 item 10)."""
    info = s.server
    if len(name.encode("utf-8")) > info.max_mailbox_name:
        raise CommandFailed(f"mailbox name longer than {info.max_mailbox_name} bytes", "LIMIT")
    if name.count(HIERARCHY_DELIMITER) + 1 > info.max_mailbox_depth:
        raise CommandFailed(f"mailbox deeper than {info.max_mailbox_depth} levels", "LIMIT")


def _check_count(s: Session, store: Store, name: str) -> None:
    """NO [LIMIT] when creating ``name`` (and its missing parents) would take the user
    over ``max_mailboxes``: one CREATE of "a/b/.../z" makes every level."""
    existing = {box.name for box in store.list_mailboxes(s.require_user().id)}
    parts = name.split(HIERARCHY_DELIMITER)
    new = sum(
        1 for i in range(1, len(parts) + 1) if HIERARCHY_DELIMITER.join(parts[:i]) not in existing
    )
    if len(existing) + new > s.server.max_mailboxes:
        raise CommandFailed(f"no more than {s.server.max_mailboxes} mailboxes", "LIMIT")


def _changed_list(s: Session) -> None:
    s.events.append(MailboxChanged(s.require_user().id, 0, 0, "mailboxes"))


def create(s: Session, cmd: c.Create, store: Store) -> None:
    name = _valid_name(cmd.mailbox)
    if name == "INBOX" or store.get_mailbox(s.require_user().id, name) is not None:
        raise CommandFailed("mailbox already exists", "ALREADYEXISTS")
    _check_shape(s, name)
    _check_count(s, store, name)
    uses = [u for u in cmd.special_use]
    if any(u not in _SPECIAL_USES for u in uses) or len(uses) > 1:
        raise CommandFailed("unsupported special-use attribute", "USEATTR")
    made = store.create_mailbox(s.require_user().id, name, uses[0] if uses else None)
    _changed_list(s)
    s.ok(cmd.tag, "CREATE completed", f"MAILBOXID ({mailbox_object_id(made.uidvalidity)})")


def delete(s: Session, cmd: c.Delete, store: Store) -> None:
    if cmd.mailbox == "INBOX":
        raise CommandFailed("INBOX cannot be deleted", "CANNOT")
    mbox = s.mailbox(store, cmd.mailbox)
    store.delete_mailbox(mbox.user_id, mbox.name)
    _changed_list(s)
    s.ok(cmd.tag, "DELETE completed")


def rename(s: Session, cmd: c.Rename, store: Store) -> None:
    new = _valid_name(cmd.new)
    old = s.mailbox(store, cmd.old)
    if new == "INBOX" or store.get_mailbox(s.require_user().id, new) is not None:
        raise CommandFailed("target mailbox exists", "ALREADYEXISTS")
    _check_rename(s, store, old.name, new)
    store.rename_mailbox(s.require_user().id, cmd.old, new)
    _changed_list(s)
    s.ok(cmd.tag, "RENAME completed")


def _check_rename(s: Session, store: Store, old: str, new: str) -> None:
    """RENAME moves the children too: each new name must fit, and the parents it
    makes count against ``max_mailboxes``."""
    prefix = old + HIERARCHY_DELIMITER
    for box in store.list_mailboxes(s.require_user().id):
        if box.name.startswith(prefix):
            _check_shape(s, new + box.name[len(old) :])
    _check_shape(s, new)
    parent = new.rpartition(HIERARCHY_DELIMITER)[0]
    if parent:
        _check_count(s, store, parent)


def subscribe(s: Session, cmd: c.Subscribe, store: Store) -> None:
    if cmd.subscribe or isinstance(cmd.mailbox, InvalidName):
        s.mailbox(store, cmd.mailbox)
    store.set_subscribed(s.require_user().id, cmd.mailbox, cmd.subscribe)
    s.events.append(MailboxChanged(s.require_user().id, 0, 0, "subscriptions"))
    verb = "SUBSCRIBE" if cmd.subscribe else "UNSUBSCRIBE"
    s.ok(cmd.tag, f"{verb} completed")


def list_(s: Session, cmd: c.ListCmd, store: Store) -> None:
    word = b"LSUB" if cmd.lsub else b"LIST"
    if not cmd.lsub and cmd.patterns == ("",):
        s.untagged(b"LIST (\\Noselect) " + _DELIM + b' ""')
        s.ok(cmd.tag, "LIST completed")
        return
    if any(isinstance(n, InvalidName) for n in (cmd.reference, *cmd.patterns)):
        s.ok(cmd.tag, f"{word.decode()} completed")  # matches no name there can be
        return
    uid = s.require_user().id
    boxes = store.list_mailboxes(uid)
    names = names_with_children(b.name for b in boxes)
    subscribed = set(store.subscriptions(uid))
    if cmd.lsub or "SUBSCRIBED" in cmd.selection:
        _list_subscribed(s, cmd, store, boxes, subscribed)
        s.ok(cmd.tag, f"{word.decode()} completed")
        return
    want_special = "SPECIAL-USE" in cmd.selection
    listed = [
        box
        for box in boxes
        if any(matches(cmd.reference, p, box.name) for p in cmd.patterns)
        and not (want_special and box.special_use is None)
    ]
    counts = store.counts_many([b.id for b in listed]) if cmd.status_items else {}
    for box in listed:
        attrs = _attributes(box, names, subscribed, cmd)
        encoded = enc_mailbox(box.name)  # once for both lines
        s.untagged(word + b" (" + b" ".join(attrs) + b") " + _DELIM + b" " + encoded)
        if cmd.status_items:
            _status_line(s, store, box, cmd.status_items, counts.get(box.id), encoded)
    s.ok(cmd.tag, f"{word.decode()} completed")


def _list_subscribed(
    s: Session, cmd: c.ListCmd, store: Store, boxes: list[Mailbox], subscribed: set[str]
) -> None:
    """LSUB, and LIST with the SUBSCRIBED selection option: subscribed names whether
    or not they exist (a deleted one is ``\\NonExistent`` in LIST, RFC 5258 §3.1; a
    subscription outlives its mailbox, RFC 3501 §6.3.6), and the levels above
    subscribed names that the pattern stops at: ``\\Noselect`` in LSUB (§6.3.9),
    with CHILDINFO in LIST under RECURSIVEMATCH (RFC 5258 §3.5)."""
    by_name = {b.name: b for b in boxes}
    names = names_with_children(by_name)
    direct, parents = subscribed_matches(cmd.reference, cmd.patterns, subscribed)
    recursive = "RECURSIVEMATCH" in cmd.selection
    want_special = "SPECIAL-USE" in cmd.selection
    shown = direct | parents if cmd.lsub or recursive else direct
    counts: dict[int, MailboxCounts] = {}
    if cmd.status_items:
        counts = store.counts_many([by_name[n].id for n in shown if n in by_name])
    for name in sorted(shown):
        box = by_name.get(name)
        if want_special and (box is None or box.special_use is None):
            continue
        if box is not None and (name in direct or not cmd.lsub):
            attrs = _attributes(box, names, subscribed, cmd)
        elif not cmd.lsub:
            attrs = [b"\\NonExistent"] + ([b"\\Subscribed"] if name in subscribed else [])
        elif name in direct:
            attrs = []  # LSUB has no \NonExistent (RFC 3501); as Dovecot answers
        else:
            attrs = [b"\\Noselect"]
        word = b"LSUB" if cmd.lsub else b"LIST"
        line = word + b" (" + b" ".join(attrs) + b") " + _DELIM + b" " + enc_mailbox(name)
        if recursive and name in parents:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        s.untagged(line)
        if cmd.status_items and box is not None:
            _status_line(s, store, box, cmd.status_items, counts.get(box.id))


def _attributes(
    box: Mailbox, with_children: set[str], subscribed: set[str], cmd: c.ListCmd
) -> list[bytes]:
    attrs = [b"\\HasChildren" if box.name in with_children else b"\\HasNoChildren"]
    if box.special_use:
        attrs.append(box.special_use.encode())
    if (
        not cmd.lsub
        and (box.name in subscribed)
        and ("SUBSCRIBED" in cmd.selection or "SUBSCRIBED" in cmd.returns)
    ):
        attrs.append(b"\\Subscribed")
    return attrs


def _status_values(
    store: Store, box: Mailbox, items: tuple[str, ...], counts: MailboxCounts | None = None
) -> list[bytes]:
    """``counts``: read already for many mailboxes (LIST-STATUS); else read here."""
    if counts is None:
        counts = store.counts(box.id)
    values = {
        "MESSAGES": counts.messages,
        "RECENT": counts.recent,
        "UIDNEXT": box.uidnext,
        "UIDVALIDITY": box.uidvalidity,
        "UNSEEN": counts.unseen,
        "SIZE": counts.size,
        "DELETED": counts.deleted,
        "DELETED-STORAGE": -(-counts.deleted_storage // 1024),  # KiB, as QUOTA's STORAGE
        "HIGHESTMODSEQ": box.highestmodseq,
    }
    out = []
    for item in items:
        if item == "MAILBOXID":  # RFC 8474 §4.3
            out.append(b"MAILBOXID (" + mailbox_object_id(box.uidvalidity).encode() + b")")
            continue
        if item not in values:
            raise CommandFailed(f"unknown STATUS item {item}", "CLIENTBUG")
        out.append(b"%s %d" % (item.encode(), values[item]))
    return out


def _status_line(
    s: Session,
    store: Store,
    box: Mailbox,
    items: tuple[str, ...],
    counts: MailboxCounts | None = None,
    encoded: bytes | None = None,
) -> None:
    vals = _status_values(store, box, items, counts)
    name = enc_mailbox(box.name) if encoded is None else encoded
    s.untagged(b"STATUS " + name + b" (" + b" ".join(vals) + b")")


def status(s: Session, cmd: c.Status, store: Store) -> None:
    box = s.mailbox(store, cmd.mailbox)
    if "HIGHESTMODSEQ" in cmd.items:  # a CONDSTORE enabling command (RFC 7162 §3.1)
        s.condstore_command()
    _status_line(s, store, box, cmd.items)
    s.ok(cmd.tag, "STATUS completed")
