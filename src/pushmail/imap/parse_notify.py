"""The grammar of NOTIFY (RFC 5465 §8), one function per rule (design.md rule 6).

Unknown events that are well-formed (``event-ext``, e.g. AnnotationChange) parse, so
the session can refuse them with ``NO [BADEVENT]`` as §5 asks, instead of a BAD.
"""

from __future__ import annotations

from typing import cast

from pushmail.imap.commands import FetchAtt, FilterKind, Notify, NotifyEvent, NotifyGroup
from pushmail.imap.parse_fetch import parse_fetch_att
from pushmail.imap.parse_lexer import Reader, paren_list, parse_mailbox, parse_upper_atom

_FILTERS = {
    "SELECTED",
    "SELECTED-DELAYED",
    "INBOXES",
    "PERSONAL",
    "SUBSCRIBED",
    "SUBTREE",
    "MAILBOXES",
}
# Canonical spellings of the events we implement, by upper-cased name.
KNOWN_EVENTS: dict[str, NotifyEvent] = {
    "MESSAGENEW": "MessageNew",
    "MESSAGEEXPUNGE": "MessageExpunge",
    "FLAGCHANGE": "FlagChange",
    "MAILBOXNAME": "MailboxName",
    "SUBSCRIPTIONCHANGE": "SubscriptionChange",
}


def parse_one_or_more_mailbox(r: Reader) -> tuple[str, ...]:
    """one-or-more-mailbox = mailbox / many-mailboxes
    many-mailboxes = "(" mailbox *(SP mailbox) ")" """
    if r.at(b"("):
        return tuple(paren_list(r, parse_mailbox, empty_ok=False))
    return (parse_mailbox(r),)


def parse_filter_mailboxes(r: Reader) -> tuple[FilterKind, tuple[str, ...]]:
    """filter-mailboxes = filter-mailboxes-selected / filter-mailboxes-other
    filter-mailboxes-selected = "selected" / "selected-delayed"
    filter-mailboxes-other = "inboxes" / "personal" / "subscribed" /
                             ("subtree" SP one-or-more-mailbox) /
                             ("mailboxes" SP one-or-more-mailbox)"""
    name = parse_upper_atom(r)
    if name not in _FILTERS:
        r.fail(f"unknown mailbox filter {name}")
    kind = cast(FilterKind, name)
    if kind in ("SUBTREE", "MAILBOXES"):
        r.sp()
        return kind, parse_one_or_more_mailbox(r)
    return kind, ()


def parse_event(r: Reader) -> tuple[str, tuple[FetchAtt, ...]]:
    """event = message-event / mailbox-event / user-event / event-ext
    message-event = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) /
                    "MessageExpunge" / "FlagChange" / "AnnotationChange"
    event-ext = atom"""
    name = parse_upper_atom(r)
    fetch: tuple[FetchAtt, ...] = ()
    if name == "MESSAGENEW" and r.at(b" ("):
        r.sp()
        fetch = tuple(paren_list(r, parse_fetch_att, empty_ok=False))
    return name, fetch


def parse_events(r: Reader) -> tuple[list[tuple[str, tuple[FetchAtt, ...]]], bool]:
    """events = ("(" event *(SP event) ")") / "NONE" ; returns (events, was NONE)"""
    if not r.at(b"("):
        if parse_upper_atom(r) != "NONE":
            r.fail('expected "(" or NONE for the events')
        return [], True
    return paren_list(r, parse_event, empty_ok=False), False


def parse_event_group(r: Reader, unsupported: list[str]) -> NotifyGroup:
    """event-group = "(" filter-mailboxes SP events ")"
    Well-formed events we do not offer are added to ``unsupported``."""
    r.expect(b"(", '"(" to start an event group')
    kind, boxes = parse_filter_mailboxes(r)
    r.sp()
    events, _none = parse_events(r)
    r.expect(b")", '")" to end an event group')
    names: list[NotifyEvent] = []
    fetch: tuple[FetchAtt, ...] = ()
    for name, atts in events:
        if name not in KNOWN_EVENTS:
            unsupported.append(name)
            continue
        if KNOWN_EVENTS[name] in names:
            r.fail(f"event {name} given twice")
        names.append(KNOWN_EVENTS[name])
        fetch = fetch or atts
    if fetch and kind not in ("SELECTED", "SELECTED-DELAYED"):
        r.fail("FETCH attributes only for the selected mailbox")  # RFC 5465 §5.1
    # RFC 5465 §5: MessageNew and MessageExpunge come together (a client that hears
    # of new messages but not of expunges would misnumber them), and FlagChange
    # needs both (§5.4). Each violation is refused alike, with BAD.
    if ("MessageNew" in names) != ("MessageExpunge" in names):
        r.fail("MessageNew and MessageExpunge must be given together")
    if "FlagChange" in names and not {"MessageNew", "MessageExpunge"} <= set(names):
        r.fail("FlagChange needs MessageNew and MessageExpunge")
    return NotifyGroup(kind, boxes, tuple(names), fetch)


def parse_notify(r: Reader, tag: str) -> Notify:
    """notify = "NOTIFY" SP (notify-set / notify-none)
    notify-set = "SET" [status-indicator] SP event-groups
    status-indicator = SP "STATUS"
    event-groups = event-group *(SP event-group)
    notify-none = "NONE" """
    r.sp()
    verb = parse_upper_atom(r)
    if verb == "NONE":
        return Notify(tag, None)
    if verb != "SET":
        r.fail("expected SET or NONE")
    r.sp()
    status = False
    if not r.at(b"("):
        if parse_upper_atom(r) != "STATUS":
            r.fail('expected STATUS or "("')
        status = True
        r.sp()
    unsupported: list[str] = []
    groups = [parse_event_group(r, unsupported)]
    while r.skip(b" "):
        groups.append(parse_event_group(r, unsupported))
    return Notify(tag, tuple(groups), status, tuple(unsupported))
