"""The SMTP layer's door to the store thread: user look-ups, local-domain checks and
durable delivery, each run as one job on ``StoreRunner`` so the event loop never
touches SQLite (design.md rule 8).

One ``Deliverer`` is kept per store object and only ever used on the store thread:
it is built lazily inside the first job, from the store that the runner hands in.

Deliveries are group-committed: while one batch is on the store thread, the messages
that arrive queue up, and the next job stores all of them in one transaction (one
fsync) before each waiting session hears its own per-recipient replies. Nobody waits
to *fill* a batch: a lone message goes at once, batches only form under load. At most
one delivery batch is in flight, so IMAP jobs still get the store thread in between.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pushmail.delivery import Deliverer, RecipientResult
from pushmail.events.interfaces import Publisher
from pushmail.store.interfaces import Store, User
from pushmail.threads.store_runner import StoreRunner

__all__ = ["LocalDelivery"]

MAX_BATCH_MESSAGES = 256
MAX_BATCH_BYTES = 64 * 1024 * 1024
KNOWN_TTL = 30.0  # seconds an address that resolved is answered from memory at RCPT
KNOWN_MAX = 65536  # addresses remembered; the oldest go first


@dataclass(frozen=True, slots=True)
class _Waiting:
    """One message queued for the next batch, and the session waiting for it."""

    recipients: tuple[str, ...]
    raw: bytes
    future: asyncio.Future[list[RecipientResult]]


class LocalDelivery:
    """Async facade over ``Deliverer`` for the SMTP/LMTP handlers."""

    def __init__(
        self,
        runner: StoreRunner,
        publisher: Publisher,
        hostname: str,
        domains: Sequence[str] = (),
    ) -> None:
        self._runner = runner
        self._publisher = publisher
        self._static_domains = frozenset(d.lower() for d in (hostname, *domains))
        self._deliverer: Deliverer | None = None
        self._deliverer_store: Store | None = None
        self._queue: deque[_Waiting] = deque()
        self._batcher: asyncio.Task[None] | None = None
        self._known: dict[str, tuple[User, float]] = {}

    def _get(self, store: Store) -> Deliverer:
        """Store thread only: the Deliverer for the runner's current store."""
        if self._deliverer is None or self._deliverer_store is not store:
            self._deliverer = Deliverer(store, self._publisher)
            self._deliverer_store = store
        return self._deliverer

    async def resolve(self, address: str, remembered: bool = False) -> User | None:
        """The user that ``address`` (maybe ``user+tag@domain``) delivers to.

        An address that resolved is remembered for KNOWN_TTL seconds, and with
        ``remembered`` the answer may come from there: a burst of deliveries then
        costs no trip to the store thread per RCPT, where each trip also waited
        behind the commit in progress. Only the answer "this user exists" is
        remembered, and it is not the last word: ``deliver`` resolves every
        recipient again inside its transaction, so mail for a user deleted meanwhile
        is never stored. LMTP asks with ``remembered``, since it then answers that
        recipient 550 after DATA; SMTP, with one reply for all recipients, does not."""
        now = time.monotonic()
        known = self._known.get(address)
        if remembered and known is not None and known[1] > now:
            return known[0]
        user = await self._runner.run(lambda store: self._get(store).resolve(address))
        if user is None:
            self._known.pop(address, None)
            return None
        if len(self._known) >= KNOWN_MAX and address not in self._known:
            del self._known[next(iter(self._known))]
        self._known[address] = (user, now + KNOWN_TTL)
        return user

    async def has_room(self, address: str, size: int) -> bool:
        """``Deliverer.has_room`` on the store thread."""
        return await self._runner.run(lambda store: self._get(store).has_room(address, size))

    async def get_user(self, address: str) -> User | None:
        """The user whose login name is exactly ``address`` (case-insensitive)."""
        return await self._runner.run(lambda store: store.get_user(address.lower()))

    async def is_local_domain(self, domain: str) -> bool:
        """True for the configured hostname and domains, and any domain in which a
        user exists. Only asked for recipients that did not resolve, so the user scan
        is paid for unknown addresses, not for ordinary deliveries."""
        domain = domain.lower()
        if domain in self._static_domains:
            return True

        def scan(store: Store) -> bool:
            return any(u.address.rpartition("@")[2] == domain for u in store.list_users())

        return await self._runner.run(scan)

    async def deliver(self, recipients: Sequence[str], raw: bytes) -> list[RecipientResult]:
        """Store ``raw`` for every recipient; durable (committed) when this returns."""
        future: asyncio.Future[list[RecipientResult]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(tuple(recipients), raw, future))
        if self._batcher is None:
            self._batcher = asyncio.create_task(self._run_batches())
        return await future

    async def _run_batches(self) -> None:
        """Send queued messages to the store thread, one batch at a time, until the
        queue is empty. A job that raises fails only its own batch: each of its
        sessions gets the exception, which the handler answers with 451. If this task
        is cancelled (shutdown), everyone still waiting is cancelled too, not left
        hanging."""
        batch: list[_Waiting] = []
        try:
            while self._queue:
                batch = self._take_batch()
                try:
                    results = await self._deliver_batch([(w.recipients, w.raw) for w in batch])
                except Exception as exc:
                    for waiting in batch:
                        if not waiting.future.done():
                            waiting.future.set_exception(exc)
                else:
                    for waiting, result in zip(batch, results, strict=True):
                        if not waiting.future.done():  # the session may have gone away
                            waiting.future.set_result(result)
                batch = []
        finally:
            self._batcher = None
            for waiting in (*batch, *self._queue):
                waiting.future.cancel()
            self._queue.clear()

    async def _deliver_batch(
        self, items: list[tuple[tuple[str, ...], bytes]]
    ) -> list[list[RecipientResult]]:
        """One store job, one transaction: parse, store and publish the whole batch."""
        return await self._runner.run(lambda store: self._get(store).deliver_many(items))

    def _take_batch(self) -> list[_Waiting]:
        """Everything queued now, up to the caps (always at least one message)."""
        batch = [self._queue.popleft()]
        size = len(batch[0].raw)
        while self._queue and len(batch) < MAX_BATCH_MESSAGES:
            size += len(self._queue[0].raw)
            if size > MAX_BATCH_BYTES:
                break
            batch.append(self._queue.popleft())
        return batch
