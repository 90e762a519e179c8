"""The queue and its dispatcher against a real endpoint, on a clock the test moves:
coalescing, rate limit, retries with backoff until the deadline, 404/410 cleanup, and
alerts that survive a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from push_endpoint import PushEndpoint

from pushmail.push.alert import Alert
from pushmail.push.db import DbThread, Device
from pushmail.push.db_sqlite import SqlitePushDB
from pushmail.push.dispatcher import DeliveryPolicy, Dispatcher
from pushmail.push.senders import Sender, WebhookSender

POLICY = DeliveryPolicy(hold=2.0, min_interval=30.0, lifetime=600.0, backoff_base=2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def alert(new: int = 1) -> Alert:
    return Alert("acct", "INBOX", new, new, new)


Scenario = Callable[[PushEndpoint, DbThread, Dispatcher, Clock, list[Device]], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, script: list[int | str] | None = None,
        devices: int = 1, timeout: float = 5.0) -> PushEndpoint:  # fmt: skip
    async def main() -> PushEndpoint:
        ep = PushEndpoint(script=list(script or []))
        await ep.start()
        db = DbThread(lambda: SqlitePushDB(tmp_path / "push.sqlite3"))
        try:
            async with aiohttp.ClientSession() as session:
                senders: dict[str, Sender] = {"webhook": WebhookSender(session, timeout)}
                clock = Clock()
                made = []
                for i in range(devices):
                    d = Device(0, 7, "webhook", ep.url(f"/hook{i}"), secret="x" * 20)
                    made.append(await db.run(lambda p, d=d: p.add_device(d)))  # type: ignore[misc]
                disp = Dispatcher(db, senders, POLICY, clock)
                await scenario(ep, db, disp, clock, made)
        finally:
            db.close()
            await ep.stop()
        return ep

    return asyncio.run(main())


def enqueue(db: DbThread, device: Device, a: Alert, now: float) -> Awaitable[None]:
    return db.run(lambda p: p.enqueue(device.id, "topic", a, now, POLICY.hold, POLICY.lifetime))


def test_a_burst_coalesces_into_one_alert_per_device(tmp_path: Path) -> None:
    async def scenario(ep: PushEndpoint, db: DbThread, disp: Dispatcher, clock: Clock,
                       devs: list[Device]) -> None:  # fmt: skip
        for i in range(10):
            for d in devs:
                await enqueue(db, d, alert(), clock.now + i * 0.1)
        assert await disp.drain_once() == 0  # still held for more mail
        clock.now += POLICY.hold + 1
        assert await disp.drain_once() == 2
        assert await disp.drain_once() == 0

    ep = run(tmp_path, scenario, devices=2)
    assert sorted(r.path for r in ep.received) == ["/hook0", "/hook1"]
    assert all(r.payload is not None and r.payload["new"] == 10 for r in ep.received)


def test_rate_limit_per_device(tmp_path: Path) -> None:
    async def scenario(ep: PushEndpoint, db: DbThread, disp: Dispatcher, clock: Clock,
                       devs: list[Device]) -> None:  # fmt: skip
        [d] = devs
        await enqueue(db, d, alert(), clock.now - POLICY.hold)
        assert await disp.drain_once() == 1
        clock.now += 1
        await enqueue(db, d, alert(2), clock.now - POLICY.hold)
        assert await disp.drain_once() == 0  # sent 1 s ago: waits for min_interval
        due = await db.run(lambda p: p.next_due(POLICY.min_interval))
        assert due is not None and due == clock.now - 1 + POLICY.min_interval
        clock.now = due
        assert await disp.drain_once() == 1

    ep = run(tmp_path, scenario)
    assert [r.payload["new"] for r in ep.received if r.payload] == [1, 2]


def test_server_errors_and_timeouts_are_retried_with_backoff(tmp_path: Path) -> None:
    async def scenario(ep: PushEndpoint, db: DbThread, disp: Dispatcher, clock: Clock,
                       devs: list[Device]) -> None:  # fmt: skip
        await enqueue(db, devs[0], alert(), clock.now - POLICY.hold)
        assert await disp.drain_once() == 1  # 500
        assert await disp.drain_once() == 0  # backing off 2 s
        clock.now += 2
        assert await disp.drain_once() == 1  # hangs: times out
        clock.now += 3
        assert await disp.drain_once() == 0  # backing off 4 s now
        clock.now += 1
        assert await disp.drain_once() == 1  # 201
        assert await db.run(lambda p: p.queued()) == 0
        assert disp.stats["retry"] == 2 and disp.stats["ok"] == 1

    ep = run(tmp_path, scenario, script=[500, "hang"], timeout=0.3)
    assert ep.attempts == 3 and len(ep.received) == 1


def test_an_alert_is_given_up_at_its_deadline(tmp_path: Path) -> None:
    async def scenario(ep: PushEndpoint, db: DbThread, disp: Dispatcher, clock: Clock,
                       devs: list[Device]) -> None:  # fmt: skip
        await enqueue(db, devs[0], alert(), clock.now - POLICY.hold)
        start = clock.now
        while await db.run(lambda p: p.queued()):
            await disp.drain_once()
            clock.now += 60
            assert clock.now - start < 2 * POLICY.lifetime
        assert disp.stats["expired"] == 1
        assert await db.run(lambda p: len(p.devices())) == 1  # a 503 does not remove it

    ep = run(tmp_path, scenario, script=[503] * 100)
    assert ep.received == [] and 1 < ep.attempts < 20


def test_gone_endpoints_are_removed(tmp_path: Path) -> None:
    async def scenario(ep: PushEndpoint, db: DbThread, disp: Dispatcher, clock: Clock,
                       devs: list[Device]) -> None:  # fmt: skip
        for d in devs:
            await enqueue(db, d, alert(), clock.now - POLICY.hold)
        assert await disp.drain_once() == 3
        left = await db.run(lambda p: p.devices())
        assert len(left) == 1 and disp.stats["gone"] == 2
        assert await db.run(lambda p: p.queued()) == 0

    run(tmp_path, scenario, script=[410, 404, 201], devices=3)


def test_queued_alerts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "push.sqlite3"

    async def main() -> PushEndpoint:
        ep = PushEndpoint()
        await ep.start()
        try:
            before = DbThread(lambda: SqlitePushDB(path))
            d = Device(0, 7, "webhook", ep.url("/hook"), secret="x" * 20)
            device = await before.run(lambda p: p.add_device(d))
            await enqueue(before, device, alert(4), 0.0)
            claimed = await before.run(lambda p: p.claim_due(100.0, 30.0, 10))
            assert len(claimed) == 1  # in flight when the process dies
            before.close()
            after = DbThread(lambda: SqlitePushDB(path))
            try:
                async with aiohttp.ClientSession() as session:
                    senders: dict[str, Sender] = {"webhook": WebhookSender(session, 5)}
                    disp = Dispatcher(after, senders, POLICY, Clock())
                    assert await disp.drain_once() == 1
                    assert await after.run(lambda p: p.queued()) == 0
            finally:
                after.close()
        finally:
            await ep.stop()
        return ep

    ep = asyncio.run(main())
    assert [r.payload["new"] for r in ep.received if r.payload] == [4]


def test_a_failed_alert_merges_into_a_newer_one(tmp_path: Path) -> None:
    db = SqlitePushDB(tmp_path / "push.sqlite3")
    try:
        d = db.add_device(Device(0, 7, "webhook", "https://h/x", secret="x" * 20))
        db.enqueue(d.id, "t", alert(2), 0.0, 0.0, 100.0)
        [item] = db.claim_due(0.0, 0.0, 10)
        db.enqueue(d.id, "t", alert(3), 1.0, 0.0, 100.0)  # arrives while the first is in flight
        assert db.queued() == 2
        assert db.retry_later(item, 5.0)
        assert db.queued() == 1
        [merged] = db.claim_due(10.0, 0.0, 10)
        assert merged.alert.new == 5
        assert not db.retry_later(merged, 102.0)  # past the (newer) deadline: dropped
        assert db.queued() == 0
        assert db.remove_device(d.id) and not db.remove_device(d.id)
    finally:
        db.close()
