"""The push engine on several nodes sharing one PostgreSQL database: every alert is
sent once, whichever nodes hear the hint and claim the work, and the alerts a node
had claimed when it died are sent by another once its lease runs out.

Endpoints are loopback webhooks (``PushEndpoint``), reached through the guarded
HTTP client with the private-address allowance (``push.allow_private_endpoints``)."""

from __future__ import annotations

import asyncio
import email.policy
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from push_endpoint import PushEndpoint, ThreadedEndpoint

from pg_proxy import CuttableProxy
from pg_testdb import scratch_database
from pushmail.delivery import Deliverer
from pushmail.events.interfaces import MailboxChanged
from pushmail.push.alert import Alert
from pushmail.push.db import DbThread, Device
from pushmail.push.db_open import open_push_db
from pushmail.push.db_postgres import PostgresPushDB
from pushmail.push.destinations import guarded_session
from pushmail.push.dispatcher import DeliveryPolicy, Dispatcher
from pushmail.push.engine import AlertEngine
from pushmail.push.senders import Sender, WebhookSender
from pushmail.store.pg_base import StoreUnavailable
from pushmail.store.pg_schema import new_pool
from pushmail.store.postgres import PostgresStore
from pushmail.threads.store_runner import StoreRunner

POLICY = DeliveryPolicy(hold=0.0, min_interval=0.0, lifetime=600.0, batch=8)
NODE = Path(__file__).with_name("cluster_node.py")
DEADLINE = 60.0  # seconds a test waits for the queue to drain before it fails


class Hints:
    """A bus that hands every delivery's hints to every node's engine, as the NATS
    bus does for listeners of all users (``subscribe_all``)."""

    def __init__(self) -> None:
        self.engines: list[AlertEngine] = []
        self._loop = asyncio.get_running_loop()

    def publish(self, event: MailboxChanged) -> None:
        self.publish_many([event])

    def publish_many(self, events: list[MailboxChanged]) -> None:
        for event in events:
            for engine in self.engines:
                self._loop.call_soon_threadsafe(engine.on_event, event)


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "friend@example.com"
    msg["Subject"] = f"message {n}"
    msg.set_content("body\n")
    return msg.as_bytes(policy=email.policy.SMTP)


def test_two_nodes_hearing_every_hint_send_each_alert_once(tmp_path: Path) -> None:
    users = 24

    async def main(url: str) -> PushEndpoint:
        ep = PushEndpoint()
        await ep.start()
        hints = Hints()
        runners = [StoreRunner(lambda: PostgresStore(url)) for _ in range(2)]
        dbs = [DbThread(lambda: open_push_db(url)) for _ in range(2)]
        try:
            async with guarded_session(allow_private=True) as session:
                senders: dict[str, Sender] = {"webhook": WebhookSender(session, 10)}
                dispatchers = [Dispatcher(db, senders, POLICY) for db in dbs]
                secret = await dbs[0].run(lambda db: db.secret())
                for runner, db, disp in zip(runners, dbs, dispatchers, strict=True):
                    engine = AlertEngine(runner, db, secret, POLICY, disp.wake)
                    hints.engines.append(engine)
                for i in range(users):
                    address = f"u{i}@example.org"
                    user = await runners[0].run(lambda st, a=address: st.create_user(a, "x"))
                    d = Device(0, user.id, "webhook", ep.url(f"/u{i}"), secret="s" * 20)
                    await dbs[i % 2].run(lambda db, d=d: db.add_device(d))  # type: ignore[misc]
                for i in range(users):  # deliveries through both nodes' stores
                    address = f"u{i}@example.org"
                    runner = runners[i % 2]
                    done = await runner.run(
                        lambda st, a=address, n=i: Deliverer(st, hints).deliver([a], mail(n))
                    )
                    assert done[0].ok
                await asyncio.sleep(0)
                for engine in hints.engines:
                    await engine.idle()
                tasks = [asyncio.ensure_future(d.run()) for d in dispatchers]
                start = time.monotonic()
                while await dbs[0].run(lambda db: db.queued()) or len(ep.received) < users:
                    assert time.monotonic() - start < DEADLINE, "the queue did not drain"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # a duplicate, if any, would arrive now
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for engine in hints.engines:
                    await engine.close()
                assert sum(d.stats["ok"] for d in dispatchers) == users
        finally:
            for db in dbs:
                db.close()
            for runner in runners:
                runner.close()
            await ep.stop()
        return ep

    with scratch_database() as url:
        ep = asyncio.run(main(url))
    paths = sorted(r.path for r in ep.received)
    assert paths == sorted(f"/u{i}" for i in range(users))  # each once, none twice
    assert all(r.payload is not None and r.payload["new"] == 1 for r in ep.received)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_alerts_claimed_by_a_killed_node_are_sent_by_another(tmp_path: Path) -> None:
    devices, batch, lease = 10, 4, 2.0
    with scratch_database() as url, ThreadedEndpoint() as ep:
        db = open_push_db(url)
        try:
            made = [
                db.add_device(Device(0, 7, "webhook", ep.url(f"/d{i}"), secret="s" * 20))
                for i in range(devices)
            ]
            for d in made:
                db.enqueue(d.id, "t", Alert("acct", "INBOX", 1, 1, 1), time.time(), 0.0, 600.0)
        finally:
            db.close()
        ep.script = ["hang"] * batch  # node A's first claims never get an answer
        node = subprocess.Popen(
            [sys.executable, str(NODE), url, str(batch), str(lease)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(NODE.parent)},
        )
        try:
            start = time.monotonic()
            while ep.attempts < batch:  # A has claimed and is mid-send
                assert time.monotonic() - start < DEADLINE and node.poll() is None
                time.sleep(0.02)
        finally:
            node.send_signal(signal.SIGKILL)
            node.wait()
        assert ep.received == []

        async def survivor() -> int:
            other = DbThread(lambda: open_push_db(url, lease=lease))
            try:
                async with guarded_session(allow_private=True) as session:
                    senders: dict[str, Sender] = {"webhook": WebhookSender(session, 10)}
                    disp = Dispatcher(other, senders, POLICY)
                    task = asyncio.ensure_future(disp.run())
                    start = time.monotonic()
                    while await other.run(lambda p: p.queued()):
                        assert time.monotonic() - start < DEADLINE, "the queue did not drain"
                        await asyncio.sleep(0.05)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    return disp.stats["ok"]
            finally:
                other.close()

        assert asyncio.run(survivor()) == devices
        paths = sorted(r.path for r in ep.received)
    assert paths == sorted(f"/d{i}" for i in range(devices))


def test_alerts_for_mail_that_came_while_the_push_database_was_away_follow(
    tmp_path: Path,
) -> None:
    """The push tables cannot be reached for a while (the store can): the engine
    keeps the hint of that time and tries again until the database is back, then
    alerts for that mail; the dispatcher's failure is an error, not a lost alert."""

    async def main(url: str, proxy: CuttableProxy) -> PushEndpoint:
        ep = PushEndpoint()
        await ep.start()
        hints = Hints()
        pool = new_pool(proxy.url + "?connect_timeout=2", max_size=2, timeout=1.0)
        runner = StoreRunner(lambda: PostgresStore(url))
        db = DbThread(lambda: PostgresPushDB(proxy.url, pool=pool))
        try:
            async with guarded_session(allow_private=True) as session:
                senders: dict[str, Sender] = {"webhook": WebhookSender(session, 10)}
                disp = Dispatcher(db, senders, POLICY)
                engine = AlertEngine(runner, db, b"k" * 32, POLICY, disp.wake)
                engine.retry_delay = 0.2
                hints.engines.append(engine)
                user = await runner.run(lambda st: st.create_user("a@example.org", "x"))
                d = Device(0, user.id, "webhook", ep.url("/a"), secret="s" * 20)
                await db.run(lambda p: p.add_device(d))

                async def deliver(n: int) -> None:
                    done = await runner.run(
                        lambda st: Deliverer(st, hints).deliver(["a@example.org"], mail(n))
                    )
                    assert done[0].ok
                    await asyncio.sleep(0)

                await deliver(1)
                await engine.idle()
                assert await disp.drain_once() == 1
                proxy.cut()
                await deliver(2)
                start = time.monotonic()
                while engine.retried == 0:  # it tried, and kept the hint
                    assert time.monotonic() - start < DEADLINE
                    await asyncio.sleep(0.05)
                with pytest.raises(StoreUnavailable):
                    await disp.drain_once()
                proxy.restore()
                await asyncio.wait_for(engine.idle(), DEADLINE)
                assert await disp.drain_once() == 1
                await engine.close()
        finally:
            db.close()
            runner.close()
            pool.close()
            await ep.stop()
        return ep

    with scratch_database() as url:
        proxy = CuttableProxy(url)
        try:
            ep = asyncio.run(main(url, proxy))
        finally:
            proxy.close()
    assert [r.payload["new"] for r in ep.received if r.payload] == [1, 1]
