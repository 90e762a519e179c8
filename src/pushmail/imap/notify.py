"""What a NOTIFY (RFC 5465) session asked to hear about, and which of its event
groups applies to a mailbox. No I/O: the session's ``cmd_notify`` uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pushmail.events.interfaces import ChangeKind, MailboxChanged
from pushmail.imap.commands import NotifyEvent, NotifyGroup
from pushmail.store.interfaces import HIERARCHY_DELIMITER

# The bus's change kinds as NOTIFY message events.
EVENT_OF_KIND: dict[ChangeKind, NotifyEvent] = {
    "new": "MessageNew",
    "expunge": "MessageExpunge",
    "flags": "FlagChange",
}
_SELECTED_KINDS = ("SELECTED", "SELECTED-DELAYED")


@dataclass(slots=True)
class NotifyState:
    """The groups of the last NOTIFY SET, plus what MailboxName and
    SubscriptionChange reports are computed against: the mailbox names and the
    subscriptions the client was last told of (only kept when asked for)."""

    groups: tuple[NotifyGroup, ...]
    names: dict[int, str] = field(default_factory=dict)  # mailbox id -> name
    subscribed: set[str] = field(default_factory=set)

    def selected_group(self) -> NotifyGroup | None:
        for g in self.groups:
            if g.kind in _SELECTED_KINDS:
                return g
        return None

    def group_for(self, name: str, subscriptions: Callable[[], set[str]]) -> NotifyGroup | None:
        """The first non-selected group whose filter matches mailbox ``name`` (the
        client's order decides, RFC 5465 §6). ``subscriptions`` is only called if
        a SUBSCRIBED filter is reached."""
        for g in self.groups:
            if g.kind in _SELECTED_KINDS:
                continue
            if _matches(g, name, subscriptions):
                return g
        return None

    def wants(self, event: NotifyEvent) -> bool:
        return any(event in g.events for g in self.groups)


def _matches(g: NotifyGroup, name: str, subscriptions: Callable[[], set[str]]) -> bool:
    if g.kind == "INBOXES":
        return name == "INBOX"  # delivery only ever files into INBOX
    if g.kind == "PERSONAL":
        return True
    if g.kind == "SUBSCRIBED":
        return name in subscriptions()
    if g.kind == "MAILBOXES":
        return name in g.mailboxes
    if g.kind == "SUBTREE":
        return any(
            name == root or name.startswith(root + HIERARCHY_DELIMITER) for root in g.mailboxes
        )
    return False


def hint_key(ev: MailboxChanged) -> tuple[int, str]:
    """Hints with the same key call for the same report (``event_lines`` reads the
    store afresh for each), so a queue keeps one of each."""
    return (ev.mailbox_id, ev.kind if ev.mailbox_id == 0 else "")


@dataclass(slots=True)
class PendingHints:
    """Change hints a NOTIFY session has not yet reported, one per mailbox (or per
    mailbox-list change). A flood of deliveries into one folder takes one place,
    so the queue grows with the number of *different* changes waiting, and
    ``limit`` bounds it: past it, the session is told NOTIFICATIONOVERFLOW (RFC
    5465 §5.8) instead of queueing without end while a long command runs or the
    client does not read."""

    limit: int
    events: list[MailboxChanged] = field(default_factory=list)
    keys: set[tuple[int, str]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def over_limit(self) -> bool:
        return len(self.events) > self.limit

    def add(self, ev: MailboxChanged) -> bool:
        """Queue ``ev`` unless an equal hint waits; False once over the limit."""
        key = hint_key(ev)
        if key not in self.keys:
            self.keys.add(key)
            self.events.append(ev)
        return not self.over_limit

    def take(self) -> list[MailboxChanged]:
        out, self.events = self.events, []
        self.keys.clear()
        return out
