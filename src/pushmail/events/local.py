"""The in-process change bus.

Listeners are kept per user, so an event costs only the listeners of the user it
concerns: with 100,000 idle sessions a delivery to one user touches that user's one
or two sessions, not the other 99,998 (design.md rule 10).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable

from pushmail.events.interfaces import Listener, MailboxChanged, Publisher

log = logging.getLogger(__name__)


def publish_all(publisher: Publisher, events: Iterable[MailboxChanged]) -> None:
    """Publish ``events`` in one batch when the publisher can (it has
    ``publish_many``: one datagram for many events), else one by one."""
    # getattr, not isinstance against a runtime-checkable Protocol: that check walks
    # the protocol's members on every call, and this runs once per delivery.
    publish_many = getattr(publisher, "publish_many", None)
    if publish_many is not None:
        publish_many(events)
    else:
        for event in events:
            publisher.publish(event)


class ListenerRegistry:
    """Listeners by user id; dispatch calls them synchronously, in order of
    subscription. A listener that raises is logged and does not stop the others."""

    def __init__(self) -> None:
        self._by_user: dict[int, dict[int, Listener]] = {}
        self._tokens = itertools.count()
        self._all: dict[int, Listener] = {}  # listeners of every user's events

    def subscribe(self, user_id: int, listener: Listener) -> Callable[[], None]:
        token = next(self._tokens)
        self._by_user.setdefault(user_id, {})[token] = listener

        def unsubscribe() -> None:
            listeners = self._by_user.get(user_id)
            if listeners is not None:
                listeners.pop(token, None)
                if not listeners:
                    del self._by_user[user_id]

        return unsubscribe

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        """Listen to every user's events (called after that user's own listeners)."""
        token = next(self._tokens)
        self._all[token] = listener

        def unsubscribe() -> None:
            self._all.pop(token, None)

        return unsubscribe

    def dispatch(self, event: MailboxChanged) -> None:
        listeners = self._by_user.get(event.user_id)
        if not listeners and not self._all:
            return
        # A copy: a listener may unsubscribe (itself or another) while we iterate.
        for listener in (*(listeners or {}).values(), *self._all.values()):
            try:
                listener(event)
            except Exception:
                log.exception("change listener failed for %s", event)

    def listener_count(self, user_id: int | None = None) -> int:
        """Listeners of one user, or of everyone (for metrics and tests)."""
        if user_id is not None:
            return len(self._by_user.get(user_id, ()))
        return sum(len(v) for v in self._by_user.values())


class LocalBus:
    """``events.interfaces.Bus`` within one process: publish dispatches at once, on
    the caller's thread. Listeners that live on an event loop must hop to it
    themselves (``loop.call_soon_threadsafe``) when publishers run on other threads,
    e.g. a delivery on the store thread."""

    def __init__(self) -> None:
        self._registry = ListenerRegistry()

    def subscribe(self, user_id: int, listener: Listener) -> Callable[[], None]:
        return self._registry.subscribe(user_id, listener)

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        return self._registry.subscribe_all(listener)

    def publish(self, event: MailboxChanged) -> None:
        self._registry.dispatch(event)

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        for event in events:
            self._registry.dispatch(event)

    def listener_count(self, user_id: int | None = None) -> int:
        return self._registry.listener_count(user_id)
