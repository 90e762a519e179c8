"""Change hints across machines, through a NATS server (``bus = "nats://…"``).

The same bus as ``events/unixsock.py`` (publish, per-user listeners, one listener
of every user for the push engine), for several ``pushmail serve`` nodes sharing one
store. A hint for user U travels on the subject ``pushmail.<prefix>.user.<bucket>``
where the bucket is ``U mod buckets``: a node subscribes to a bucket only while it
has a listener for a user in it, so a delivery is sent to the nodes that hold a
session of that user (and to those listening to everyone), not to every node. A
bucket shared by two users costs a spurious hint, never a lost one; the bucket count
bounds the subscriptions of a node however many users it serves.

Hints stay hints (DESIGN §1): NATS core gives at-most-once delivery and nothing
here retries. What can be lost is repaired by the re-check hooks (``on_resync``):

- a subscription becomes live at the server some time after ``subscribe`` returns
  (the caller reads the store meanwhile): once the server has confirmed a new
  bucket (a PING answered after the SUB), the hooks are called with the users of
  that bucket, which re-check against the store;
- while the connection is down, hints are lost (or queued by the client, up to a
  bound); after a reconnect, once the server has confirmed the replayed
  subscriptions, the hooks are called with None: every session re-checks at once.

The connection has ``no_echo``: a node's own hints reach its listeners directly
(as with the socket bus), not a second time through the server.

Threads: ``publish``/``publish_many`` may be called from any thread (deliveries
run on the store thread); messages are handed to the loop with
``call_soon_threadsafe`` and sent there by one task. Listeners run on the loop.
``subscribe`` and ``subscribe_all`` are called on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from pushmail.events.interfaces import Listener, MailboxChanged, Resync
from pushmail.events.local import ListenerRegistry
from pushmail.events.unixsock import decode_datagram, encode_batches
from pushmail.metrics.series import BUS_ERRORS

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "default"
DEFAULT_BUCKETS = 4096  # subscriptions a node holds at most (plus one for everyone)
MAX_OUTBOX = 65536  # messages waiting for the loop; beyond, the oldest are dropped
MAX_MESSAGE = 65536  # bytes of one received message that are decoded (hints are short)
# What the client buffers for one subscription before it drops (a slow consumer).
SUB_PENDING_MSGS = 65536
SUB_PENDING_BYTES = 16 << 20
RECONNECT_WAIT = 1  # seconds between attempts to reach the server
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")

def subject_root(prefix: str) -> str:
    """``pushmail.<prefix>``; the prefix is one or more NATS tokens (no wildcards)."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"bad NATS subject prefix {prefix!r}: use letters, digits, _ - and .")
    return f"pushmail.{prefix}"


def user_subject(root: str, buckets: int, user_id: int) -> str:
    """The subject of ``user_id``'s hints: ``<root>.user.<bucket>``."""
    return f"{root}.user.{user_id % buckets}"


def by_subject(
    root: str, buckets: int, events: Iterable[MailboxChanged]
) -> list[tuple[str, bytes]]:
    """The messages that carry ``events``: one or more per subject."""
    grouped: dict[str, list[MailboxChanged]] = {}
    for event in events:
        grouped.setdefault(user_subject(root, buckets, event.user_id), []).append(event)
    return [(s, p) for s, evs in grouped.items() for p in encode_batches(evs)]


class NatsBus:
    """``events.interfaces.Bus`` across nodes through NATS (see the module doc)."""

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        buckets: int = DEFAULT_BUCKETS,
        name: str = "pushmail",
    ) -> None:
        if buckets < 1:
            raise ValueError("buckets must be at least 1")
        self._url = url
        self._root = subject_root(prefix)
        self._buckets = buckets
        self._name = name
        self._users = ListenerRegistry()  # listeners of one user, fed by bucket subjects
        self._everyone = ListenerRegistry()  # subscribe_all, fed by the wildcard subject
        self._user_refs: dict[int, int] = {}  # listeners per user
        self._bucket_users: dict[int, set[int]] = {}  # users with listeners, per bucket
        self._all_refs = 0
        self._subs: dict[int | None, Subscription] = {}  # bucket (None: everyone) → live
        self._dirty: set[int | None] = set()  # buckets whose subscription may be wrong
        self._reconciling = asyncio.Lock()
        self._resync: dict[int, Resync] = {}
        self._resync_tokens = 0
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake_sender: asyncio.Event | None = None
        self._wake_reconcile: asyncio.Event | None = None
        self._nc: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._closing = False
        self.stats = {"published": 0, "received": 0, "dropped": 0, "reconnects": 0}

    # -- life cycle --------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect on ``loop`` in the background (retrying until the server answers);
        ``wait_connected`` waits for it."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._wake_sender = asyncio.Event()
        self._wake_reconcile = asyncio.Event()
        self._tasks = [
            loop.create_task(self._connect()),
            loop.create_task(self._send_loop()),
            loop.create_task(self._reconcile_loop()),
        ]

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the first connection is up (TimeoutError otherwise)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def aclose(self) -> None:
        """Stop, sending what the client has buffered if the server is there."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._closing = True
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(TimeoutError, NatsError, OSError):
                await nc.close()

    def close(self) -> None:
        """``aclose`` from synchronous code on the loop's thread (server shutdown)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.create_task(self.aclose())

    async def _connect(self) -> None:
        delay = 0.1
        while True:
            nc = Client()
            try:
                await nc.connect(
                    self._url,
                    name=self._name,
                    no_echo=True,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            except (TimeoutError, NatsError, OSError) as exc:
                log.warning("events: NATS at %s unreachable (%s); retrying", self._url, exc)
                with contextlib.suppress(Exception):
                    await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            break
        self._nc = nc
        log.info("events: connected to NATS at %s (%s.*)", self._url, self._root)
        # Subscriptions asked for before the connection: make them, then re-check
        # everybody (hints published meanwhile were not heard).
        self._dirty.update(self._wanted())
        await self._reconcile(resync_all=True)
        self._connected.set()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("events: NATS error: %s", exc)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("events: NATS connection lost; hints are lost until it is back")

    async def _on_reconnected(self) -> None:
        # The client replayed every SUB and had the server answer a PING before it
        # calls this, so the subscriptions are live again: whatever was published
        # while we were away may have been missed, so every session re-checks now.
        self.stats["reconnects"] += 1
        log.info("events: NATS connection back; every session re-checks")
        self._fire_resync(None)

    # -- subscriptions -----------------------------------------------------------

    def bucket(self, user_id: int) -> int:
        return user_id % self._buckets

    def subject(self, user_id: int) -> str:
        return user_subject(self._root, self._buckets, user_id)

    def subscribe(self, user_id: int, listener: Listener) -> Callable[[], None]:
        leave = self._users.subscribe(user_id, listener)
        refs = self._user_refs.get(user_id, 0)
        self._user_refs[user_id] = refs + 1
        if refs == 0:
            b = self.bucket(user_id)
            users = self._bucket_users.setdefault(b, set())
            users.add(user_id)
            if len(users) == 1:
                self._mark(b)
        done = False

        def unsubscribe() -> None:
            nonlocal done
            if done:
                return
            done = True
            leave()
            left = self._user_refs[user_id] - 1
            if left:
                self._user_refs[user_id] = left
                return
            del self._user_refs[user_id]
            b = self.bucket(user_id)
            users = self._bucket_users[b]
            users.discard(user_id)
            if not users:
                del self._bucket_users[b]
                self._mark(b)

        return unsubscribe

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        leave = self._everyone.subscribe_all(listener)
        self._all_refs += 1
        if self._all_refs == 1:
            self._mark(None)
        done = False

        def unsubscribe() -> None:
            nonlocal done
            if not done:
                done = True
                leave()
                self._all_refs -= 1
                if self._all_refs == 0:
                    self._mark(None)

        return unsubscribe

    def on_resync(self, hook: Resync) -> Callable[[], None]:
        """Call ``hook`` (on the loop) when sessions must re-check against the store
        because hints may have been missed: with the user ids whose subscription just
        became live, or with None after a reconnect (everyone). Returns the remover."""
        self._resync_tokens += 1
        token = self._resync_tokens
        self._resync[token] = hook
        return lambda: self._resync.pop(token, None) and None

    def listener_count(self, user_id: int | None = None) -> int:
        return self._users.listener_count(user_id)

    def subscribed_buckets(self) -> int:
        """Bucket subscriptions live at the server (for tests and stats)."""
        return sum(1 for b in self._subs if b is not None)

    def _wanted(self) -> set[int | None]:
        wanted: set[int | None] = set(self._bucket_users)
        if self._all_refs:
            wanted.add(None)
        return wanted

    def _mark(self, bucket: int | None) -> None:
        self._dirty.add(bucket)
        if self._wake_reconcile is not None:
            self._wake_reconcile.set()

    async def _reconcile_loop(self) -> None:
        assert self._wake_reconcile is not None
        while True:
            await self._wake_reconcile.wait()
            self._wake_reconcile.clear()
            if self._nc is not None:
                try:
                    await self._reconcile(resync_all=False)
                except (TimeoutError, NatsError, OSError) as exc:
                    # Not confirmed (the connection is down): a reconnect re-checks all.
                    log.debug("events: subscription not confirmed: %s", exc)

    async def _reconcile(self, resync_all: bool) -> None:
        """Make the server's subscriptions match the listeners, then (once the
        server confirmed them) have the users of new buckets re-check. One at a
        time (the first connection's and the loop's), so no bucket is subscribed
        twice; a bucket whose SUB failed stays marked for the next pass."""
        nc = self._nc
        assert nc is not None
        async with self._reconciling:
            added: list[int | None] = []
            while self._dirty:
                b = self._dirty.pop()
                want = self._all_refs > 0 if b is None else b in self._bucket_users
                sub = self._subs.get(b)
                if want and sub is None:
                    try:
                        self._subs[b] = await self._subscribe_subject(nc, b)
                    except BaseException:
                        self._dirty.add(b)
                        raise
                    added.append(b)
                elif not want and sub is not None:
                    del self._subs[b]
                    with contextlib.suppress(NatsError):
                        await sub.unsubscribe()
            if added or resync_all:
                await nc.flush(timeout=5)  # PONG: the server has every SUB above
        if resync_all or None in added:
            self._fire_resync(None)
        elif added:
            users = frozenset(u for b in added for u in self._bucket_users.get(b or 0, ()))
            if users:
                self._fire_resync(users)

    async def _subscribe_subject(self, nc: Client, bucket: int | None) -> Subscription:
        if bucket is None:
            subject, target = f"{self._root}.user.*", self._everyone
        else:
            subject, target = f"{self._root}.user.{bucket}", self._users

        async def on_message(msg: Msg) -> None:
            self._receive(msg, target)

        return await nc.subscribe(
            subject,
            cb=on_message,
            pending_msgs_limit=SUB_PENDING_MSGS,
            pending_bytes_limit=SUB_PENDING_BYTES,
        )

    def _dropped(self, n: int) -> None:
        """Hints lost: in the stats and in the metrics (pushmail_bus_errors_total)."""
        self.stats["dropped"] += n
        BUS_ERRORS.labels("dropped").inc(n)

    def _receive(self, msg: Msg, target: ListenerRegistry) -> None:
        data = msg.data
        if len(data) > MAX_MESSAGE:
            self._dropped(1)
            log.debug("events: oversized hint message on %s dropped", msg.subject)
            return
        for event in decode_datagram(data):
            self.stats["received"] += 1
            target.dispatch(event)

    def _fire_resync(self, users: frozenset[int] | None) -> None:
        for hook in list(self._resync.values()):
            try:
                hook(users)
            except Exception:
                log.exception("events: re-check hook failed")

    # -- publishing --------------------------------------------------------------

    def publish(self, event: MailboxChanged) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        """Dispatch to this node's listeners and send to the others; any thread."""
        batch = list(events)
        if not batch:
            return
        messages = by_subject(self._root, self._buckets, batch)
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._dispatch_local(batch)
            self._enqueue(messages)
            return
        with contextlib.suppress(RuntimeError):  # loop closed: nobody to tell
            loop.call_soon_threadsafe(self._from_thread, batch, messages)

    def _from_thread(self, batch: list[MailboxChanged], messages: list[tuple[str, bytes]]) -> None:
        self._dispatch_local(batch)
        self._enqueue(messages)

    def _dispatch_local(self, batch: list[MailboxChanged]) -> None:
        for event in batch:
            self._users.dispatch(event)
            self._everyone.dispatch(event)

    def _enqueue(self, messages: list[tuple[str, bytes]]) -> None:
        self._outbox.extend(messages)
        excess = len(self._outbox) - MAX_OUTBOX
        if excess > 0:
            for _ in range(excess):
                self._outbox.popleft()
            self._dropped(excess)
            log.warning("events: NATS far behind; %d hints dropped (re-check repairs)", excess)
        if self._wake_sender is not None:
            self._wake_sender.set()

    async def _send_loop(self) -> None:
        assert self._wake_sender is not None
        while True:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            while self._outbox:
                nc = self._nc
                if nc is None:  # not connected yet: these hints are lost (re-check)
                    self._dropped(len(self._outbox))
                    self._outbox.clear()
                    break
                subject, payload = self._outbox.popleft()
                try:
                    await nc.publish(subject, payload)
                    self.stats["published"] += 1
                except (NatsError, OSError) as exc:
                    # Reconnecting with the client's buffer full, or closed: a lost hint.
                    self._dropped(1)
                    log.debug("events: hint to %s dropped: %s", subject, exc)


class NatsPublisher:
    """``OneShotPublisher`` through NATS, for a process with no event loop
    (``pushmail deliver``): hints are kept until ``flush``, which connects, sends
    them and waits for the server to have them, within ``timeout``. A server that
    cannot be reached costs the hints (logged): the re-check repairs them."""

    def __init__(
        self, url: str, prefix: str = DEFAULT_PREFIX, buckets: int = DEFAULT_BUCKETS
    ) -> None:
        self._url = url
        self._root = subject_root(prefix)
        self._buckets = buckets
        self._pending: list[MailboxChanged] = []

    def publish(self, event: MailboxChanged) -> None:
        self._pending.append(event)

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        self._pending.extend(events)

    def flush(self, timeout: float) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        messages = by_subject(self._root, self._buckets, batch)
        try:
            asyncio.run(asyncio.wait_for(self._send(messages, timeout), timeout))
        except (TimeoutError, NatsError, OSError) as exc:
            BUS_ERRORS.labels("dropped").inc(len(messages))
            log.warning("events: hints not sent to NATS at %s: %s", self._url, exc)

    async def _send(self, messages: list[tuple[str, bytes]], timeout: float) -> None:
        nc = Client()
        await nc.connect(
            self._url,
            name="pushmail-deliver",
            allow_reconnect=False,
            connect_timeout=max(1, round(timeout)),
            max_reconnect_attempts=0,
        )
        try:
            for subject, payload in messages:
                await nc.publish(subject, payload)
            await nc.flush(timeout=max(1, round(timeout)))
        finally:
            with contextlib.suppress(TimeoutError, NatsError, OSError):
                await nc.close()

    def close(self) -> None:
        self._pending = []


def connect_url_ok(url: str) -> bool:
    """True for the URLs this bus takes (``nats://`` and ``tls://``)."""
    return url.startswith(("nats://", "tls://"))
