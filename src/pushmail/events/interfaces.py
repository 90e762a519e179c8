"""The change bus: hints that a mailbox changed.

An event says only *which* mailbox changed and up to which MODSEQ; a session that
hears one asks the store what changed since what it last reported. So events may be
lost, duplicated or reordered without harm beyond delay (design.md "The store is
the truth; events are hints").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # the IMAP session layer imports this module: no asyncio there
    import asyncio

ChangeKind = Literal["new", "flags", "expunge", "mailboxes", "subscriptions"]


@dataclass(frozen=True, slots=True)
class MailboxChanged:
    """Something changed in ``mailbox_id`` of ``user_id`` (``mailbox_id`` 0: the
    user's mailbox list itself, e.g. a CREATE or RENAME)."""

    user_id: int
    mailbox_id: int
    modseq: int
    kind: ChangeKind = "new"
    # Wall-clock time of a delivery's commit (0: not a delivery), for the wake-up
    # latency metric (metrics/wakeup.py); not part of what the hint means.
    at: float = field(default=0.0, compare=False)

    def encode(self) -> bytes:
        head = f"{self.user_id} {self.mailbox_id} {self.modseq} {self.kind}"
        return (f"{head} {self.at:.6f}" if self.at else head).encode()

    @classmethod
    def decode(cls, data: bytes) -> MailboxChanged | None:
        """Parse ``encode``'s output; None for anything malformed (hints may be junk)."""
        try:
            u, m, s, k, *rest = data.decode("ascii").split(" ")
            kind: ChangeKind
            if k not in ("new", "flags", "expunge", "mailboxes", "subscriptions") or len(rest) > 1:
                return None
            kind = k  # type: ignore[assignment]
            at = float(rest[0]) if rest else 0.0
            if not 0.0 <= at < 1e11:  # nan, inf or junk: a hint, still usable without it
                at = 0.0
            return cls(int(u), int(m), int(s), kind, at)
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


Resync = Callable[[frozenset[int] | None], None]


class ServerBus(Bus, AllUsersBus, Protocol):
    """What a serving process uses its bus through (``events/factory.open_bus``
    builds one: ``UnixSocketBus`` or ``NatsBus``).

    Threads: ``start``, ``close``, ``subscribe``, ``subscribe_all`` and
    ``on_resync`` are called on the event loop's thread; listeners and re-check
    hooks run there too. ``publish``/``publish_many`` may be called from any thread
    (a delivery publishes from the store thread, after its commit): a listener of
    this process is then called on the loop, soon, never on the caller's thread.
    A listener subscribed before ``subscribe`` returns hears every hint published
    after the bus can deliver it; one that the bus may have missed meanwhile (a
    subscription not yet live at a broker, a reconnect) is made good by the
    ``on_resync`` hooks, and any other loss by the periodic re-check.
    """

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        """Publish several events at once (one datagram or message for many)."""
        ...

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin receiving other processes' hints on ``loop`` (returns at once;
        a broker connection is made in the background)."""
        ...

    def close(self) -> None:
        """Stop receiving and release what ``start`` took (on the loop's thread)."""
        ...

    def on_resync(self, hook: Resync) -> Callable[[], None]:
        """Call ``hook`` on the loop when sessions must re-check the store because
        hints may have been missed: with the user ids concerned, or None for
        every session. Returns the function that removes the hook."""
        ...


class OneShotPublisher(Publisher, Protocol):
    """A publisher for a process with no event loop (``pushmail deliver``): it
    publishes, ``flush`` gives the hints up to ``timeout`` seconds to leave, and
    ``close`` releases it. Used from one thread."""

    def publish_many(self, events: Iterable[MailboxChanged]) -> None: ...

    def flush(self, timeout: float) -> None: ...

    def close(self) -> None: ...
