"""Who is idling on which mailbox, and waking them when a change hint arrives.

Hints come from the bus, possibly on another thread (a delivery runs on the store
thread), so ``on_event`` only hops onto the loop; the lookup by user and mailbox then
costs the same whatever number of other sessions idle elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from pushmail.events.interfaces import Bus, MailboxChanged
from pushmail.metrics import wakeup


class Wakeable(Protocol):
    def wake(self) -> None: ...


class UserWatcher(Protocol):
    """A NOTIFY session (RFC 5465): hears every hint for its user."""

    def notify_event(self, event: MailboxChanged) -> None: ...


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class IdleHub:
    def __init__(self, bus: Bus, loop: asyncio.AbstractEventLoop) -> None:
        self._bus = bus
        self._loop = loop
        # user id -> mailbox id -> idlers; plus the bus subscription per user
        self._watch: dict[int, dict[int, set[Wakeable]]] = {}
        self._unsub: dict[int, Callable[[], None]] = {}
        self._users: dict[int, set[UserWatcher]] = {}  # NOTIFY sessions per user
        self._idlers = 0  # entries in _watch, kept so that the stats need no full pass

    def add(self, user_id: int, mailbox_id: int, conn: Wakeable) -> None:
        boxes = self._watch.get(user_id)
        if boxes is None:
            boxes = self._watch[user_id] = {}
            self._subscribe(user_id)
        conns = boxes.setdefault(mailbox_id, set())
        if conn not in conns:
            conns.add(conn)
            self._idlers += 1

    def remove(self, user_id: int, mailbox_id: int, conn: Wakeable) -> None:
        boxes = self._watch.get(user_id)
        if boxes is None:
            return
        conns = boxes.get(mailbox_id)
        if conns is not None:
            if conn in conns:
                conns.discard(conn)
                self._idlers -= 1
            if not conns:
                del boxes[mailbox_id]
        if not boxes:
            del self._watch[user_id]
            self._release(user_id)

    def watch_user(self, user_id: int, conn: UserWatcher) -> None:
        """Send ``conn`` every hint for ``user_id``, whichever mailbox (NOTIFY)."""
        self._users.setdefault(user_id, set()).add(conn)
        self._subscribe(user_id)

    def unwatch_user(self, user_id: int, conn: UserWatcher) -> None:
        conns = self._users.get(user_id)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self._users[user_id]
            self._release(user_id)

    def _subscribe(self, user_id: int) -> None:
        if user_id not in self._unsub:
            self._unsub[user_id] = self._bus.subscribe(user_id, self.on_event)

    def _release(self, user_id: int) -> None:
        """Drop the bus subscription once nobody of ``user_id`` listens."""
        if user_id not in self._watch and user_id not in self._users:
            self._unsub.pop(user_id)()

    def on_event(self, event: MailboxChanged) -> None:
        """Bus listener; safe to call from any thread. Hints mostly arrive on the
        loop itself (the socket bus reads there), and those need no wake-up of the loop
        through its self-pipe; only hints published on other threads do."""
        if _running_loop() is self._loop:
            self._loop.call_soon(self._dispatch, event)
        else:
            self._loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: MailboxChanged) -> None:
        boxes = self._watch.get(event.user_id)
        if boxes:
            idlers = boxes.get(event.mailbox_id)
            if idlers and event.at:
                wakeup.arrived(event.user_id, event.mailbox_id, event.at)
            for conn in list(idlers or ()):
                conn.wake()
        for watcher in list(self._users.get(event.user_id, ())):
            watcher.notify_event(event)

    def recheck(self, users: Iterable[int] | None) -> None:
        """Wake the idlers of ``users`` (every idler for None) as a hint for their
        mailbox would: each compares its view with the store. For the bus to call
        when hints may have been missed (a reconnect, a subscription that became
        live after the session read the store: ``events/nats.py``). On the loop."""
        chosen = list(self._watch) if users is None else [u for u in users if u in self._watch]
        for user_id in chosen:
            for conns in list(self._watch.get(user_id, {}).values()):
                for conn in list(conns):
                    conn.wake()

    def count(self) -> int:
        return self._idlers
