"""The change bus: hints that a mailbox changed.

An event says only *which* mailbox changed and up to which MODSEQ; a session that
hears one asks the store what changed since what it last reported. So events may be
lost, duplicated or reordered without harm beyond delay (design.md "The store is
the truth; events are hints").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

ChangeKind = Literal["new", "flags", "expunge", "mailboxes", "subscriptions"]


@dataclass(frozen=True, slots=True)
class MailboxChanged:
    """Something changed in ``mailbox_id`` of ``user_id`` (``mailbox_id`` 0: the
    user's mailbox list itself, e.g. a CREATE or RENAME)."""

    user_id: int
    mailbox_id: int
    modseq: int
    kind: ChangeKind = "new"

    def encode(self) -> bytes:
        return f"{self.user_id} {self.mailbox_id} {self.modseq} {self.kind}".encode()

    @classmethod
    def decode(cls, data: bytes) -> MailboxChanged | None:
        """Parse ``encode``'s output; None for anything malformed (hints may be junk)."""
        try:
            u, m, s, k = data.decode("ascii").split(" ")
            kind: ChangeKind
            if k not in ("new", "flags", "expunge", "mailboxes", "subscriptions"):
                return None
            kind = k  # type: ignore[assignment]
            return cls(int(u), int(m), int(s), kind)
        except (UnicodeDecodeError, ValueError):
            return None


Listener = Callable[[MailboxChanged], None]


class Publisher(Protocol):
    """Whoever changes the store publishes here after the change is durable."""

    def publish(self, event: MailboxChanged) -> None: ...


class Bus(Publisher, Protocol):
    """A process's view of the bus: publish, and dispatch to local listeners.

    Listeners are keyed by user id, so the cost of an event does not grow with the
    number of idle sessions that it does not concern. ``subscribe`` returns a
    function that removes the listener.
    """

    def subscribe(self, user_id: int, listener: Listener) -> Callable[[], None]: ...


class AllUsersBus(Protocol):
    """A bus that can also hand every user's events to one listener (the push alert
    engine watches all mailboxes). ``subscribe_all`` returns the unsubscribe function."""

    def subscribe_all(self, listener: Listener) -> Callable[[], None]: ...
