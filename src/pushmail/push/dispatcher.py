"""Drains the alert queue: sends, retries with backoff until a deadline, rate-limits
per device, removes devices whose endpoint is gone.

It runs as one task beside the listeners and never on the delivery path: delivery
has answered 250 and IDLE sessions have their ``EXISTS`` before an alert is even
queued. Sending is concurrent (a slow endpoint delays only its own alerts) but each
device has at most one alert in flight, so alerts to one device stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pushmail.metrics.series import ALERT_QUEUE, ALERTS
from pushmail.push.db import DbThread, PushDB, QueuedAlert
from pushmail.push.senders import Sender, SendOutcome

log = logging.getLogger(__name__)
# Longest sleep between two looks at the queue: alerts queued by another process
# (``pushmail alerts test``) are noticed within this many seconds.
POLL = 5.0


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """When alerts go out. See docs/configuration.md ``[push]``."""

    hold: float = 2.0  # seconds a new alert waits for more mail to merge into it
    min_interval: float = 30.0  # seconds between two alerts to one device
    lifetime: float = 3600.0  # seconds after which an unsent alert is given up
    backoff_base: float = 2.0  # first retry after this many seconds, then doubling
    backoff_max: float = 300.0  # longest wait between two tries
    batch: int = 64  # alerts claimed (and sent concurrently) at once

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before try number ``attempts + 2``: exponential, capped, and
        never sooner than the endpoint asked for."""
        delay = min(self.backoff_base * float(2 ** min(attempts, 30)), self.backoff_max)
        return max(delay, retry_after or 0.0)


class Dispatcher:
    """See module docstring. ``clock`` is wall time (the queue is persistent, so
    its times must mean the same after a restart)."""

    def __init__(
        self,
        db: DbThread,
        senders: Mapping[str, Sender],
        policy: DeliveryPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._senders = senders
        self._policy = policy
        self._clock = clock
        self._wake = asyncio.Event()
        self.stats: Counter[str] = Counter()  # outcomes, for logs and tests

    def wake(self) -> None:
        """Something was queued: look again now rather than at the next due time."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: send what is due, then sleep until the next due time or a wake."""
        while True:
            self._wake.clear()
            if await self.drain_once():
                continue
            due = await self._db.run(self._next_due)
            delay = POLL if due is None else max(0.0, due - self._clock())
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(delay, POLL))

    def _next_due(self, db: PushDB) -> float | None:
        ALERT_QUEUE.set(db.queued())  # here: once per pass of ``run``, on the db thread
        return db.next_due(self._policy.min_interval)

    async def drain_once(self) -> int:
        """Claim and send every alert due now (at most ``batch``); the number sent
        or tried."""
        now = self._clock()
        p = self._policy
        items = await self._db.run(lambda db: db.claim_due(now, p.min_interval, p.batch))
        if not items:
            return 0
        outcomes = await asyncio.gather(*(self._send(item) for item in items))
        await self._db.run(lambda db: self._settle(db, list(zip(items, outcomes, strict=True))))
        return len(items)

    async def _send(self, item: QueuedAlert) -> SendOutcome:
        sender = self._senders.get(item.device.kind)
        if sender is None:
            return SendOutcome("failed", f"no sender for {item.device.kind}")
        try:
            return await sender.send(item.device, item.alert, item.topic)
        except Exception as e:  # a sender bug must not stop the queue
            log.exception("alert sender %s failed", item.device.kind)
            return SendOutcome("retry", f"{type(e).__name__}: {e}")

    def _settle(self, db: PushDB, results: list[tuple[QueuedAlert, SendOutcome]]) -> None:
        """Record each outcome (on the database thread)."""
        now = self._clock()
        for item, outcome in results:
            self.stats[outcome.status] += 1
            ALERTS.labels(outcome.status).inc()
            device = item.device
            if outcome.status == "ok":
                db.sent(item, now)
            elif outcome.status == "gone":
                log.info("push: %r answered %s; removing it", device, outcome.detail)
                db.remove_device(device.id)
            elif outcome.status == "failed":
                log.warning("push: %r refused an alert (%s); dropped", device, outcome.detail)
                db.give_up(item)
            else:
                delay = self._policy.backoff(item.attempts, outcome.retry_after)
                if not db.retry_later(item, now + delay):
                    self.stats["expired"] += 1
                    ALERTS.labels("expired").inc()
                    log.warning("push: %r unreachable (%s); alert expired", device, outcome.detail)
