"""The engine between a real store, the real bus and a real endpoint: deliveries
become alerts per device, filtered by each device's rules; a burst is one alert."""

from __future__ import annotations

import asyncio
import email.policy
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import aiohttp
from push_endpoint import PushEndpoint

from pushmail.delivery import Deliverer
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.unixsock import UnixSocketBus
from pushmail.imap.structure import build_cache
from pushmail.push.db import DbThread, Device
from pushmail.push.db_sqlite import SqlitePushDB
from pushmail.push.dispatcher import DeliveryPolicy, Dispatcher
from pushmail.push.engine import AlertEngine
from pushmail.push.rules import Rules
from pushmail.push.senders import Sender, WebhookSender
from pushmail.store.interfaces import NewMessage, Store
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner

POLICY = DeliveryPolicy(hold=2.0, min_interval=30.0, lifetime=600.0)
USER = "alice@example.org"


def mail(sender: str, subject: str = "secret subject") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Someone <{sender}>"
    msg["To"] = USER
    msg["Subject"] = subject
    msg.set_content("secret body\n")
    return msg.as_bytes(policy=email.policy.SMTP)


class Rig:
    """Store thread, bus, push database, engine and dispatcher, as ``serve`` has them."""

    def __init__(self, tmp: Path, ep: PushEndpoint, session: aiohttp.ClientSession) -> None:
        self.ep = ep
        self.now = 1_700_000_000.0
        self.runner = StoreRunner(lambda: SqliteStore(tmp / "mail.sqlite3"))
        self.bus = UnixSocketBus(tmp / "events")
        self.db = DbThread(lambda: SqlitePushDB(tmp / "push.sqlite3"))
        senders: dict[str, Sender] = {"webhook": WebhookSender(session, 5)}
        self.dispatcher = Dispatcher(self.db, senders, POLICY, lambda: self.now)
        self.engine = AlertEngine(
            self.runner, self.db, b"k" * 32, POLICY, self.dispatcher.wake, lambda: self.now
        )

    async def start(self) -> int:
        self.bus.start(asyncio.get_running_loop())
        self.bus.subscribe_all(self.engine.on_event)
        user = await self.runner.run(lambda st: st.create_user(USER, "{PLAIN}x"))
        return user.id

    async def device(self, user_id: int, name: str) -> Device:
        d = Device(0, user_id, "webhook", self.ep.url("/" + name), secret="x" * 20)
        return await self.db.run(lambda p: p.add_device(d))

    async def deliver(self, raw: bytes) -> None:
        results = await self.runner.run(lambda st: Deliverer(st, self.bus).deliver([USER], raw))
        assert results[0].ok

    async def flush(self) -> int:
        """Let the engine handle every hint, then send what is due after the hold."""
        await asyncio.sleep(0)  # the bus hands hints over with call_soon_threadsafe
        await self.engine.idle()
        self.now += POLICY.hold + 1
        return await self.dispatcher.drain_once()

    async def close(self) -> None:
        await self.engine.close()
        self.bus.close()
        self.db.close()
        self.runner.close()


def run(tmp_path: Path, scenario: Callable[[Rig, int], Awaitable[None]]) -> PushEndpoint:
    async def main() -> PushEndpoint:
        ep = PushEndpoint()
        await ep.start()
        try:
            async with aiohttp.ClientSession() as session:
                rig = Rig(tmp_path, ep, session)
                try:
                    await scenario(rig, await rig.start())
                finally:
                    await rig.close()
        finally:
            await ep.stop()
        return ep

    return asyncio.run(main())


def payloads(ep: PushEndpoint, path: str) -> list[dict[str, object]]:
    return [r.payload for r in ep.received if r.path == path and r.payload is not None]


def test_ten_messages_in_a_burst_make_one_alert_per_device(tmp_path: Path) -> None:
    async def scenario(rig: Rig, uid: int) -> None:
        await rig.device(uid, "phone")
        await rig.device(uid, "laptop")
        for i in range(10):
            await rig.deliver(mail("friend@example.com", f"message {i}"))
        assert await rig.flush() == 2
        assert await rig.flush() == 0

    ep = run(tmp_path, scenario)
    for path in ("/phone", "/laptop"):
        [p] = payloads(ep, path)
        assert (p["mailbox"], p["new"], p["unseen"], p["total"]) == ("INBOX", 10, 10, 10)
    for r in ep.received:
        assert b"secret" not in r.body and b"friend" not in r.body and USER.encode() not in r.body


def test_only_from_and_per_device_mute(tmp_path: Path) -> None:
    async def scenario(rig: Rig, uid: int) -> None:
        phone = await rig.device(uid, "phone")
        await rig.device(uid, "laptop")
        vip = Rules(only_from=("boss@corp.example", "family.org"))
        later = datetime.fromtimestamp(rig.now, UTC) + timedelta(hours=1)
        await rig.db.run(lambda p: p.set_rules(uid, vip))
        await rig.db.run(lambda p: p.set_rules(uid, Rules(muted_until=later), phone.id))
        for sender in ("spam@ads.example", "boss@corp.example", "mum@home.family.org"):
            await rig.deliver(mail(sender))
        assert await rig.flush() == 1

    ep = run(tmp_path, scenario)
    assert payloads(ep, "/phone") == []
    [p] = payloads(ep, "/laptop")
    assert p["new"] == 2 and p["total"] == 3


def test_other_folders_seen_mail_and_switched_off(tmp_path: Path) -> None:
    async def scenario(rig: Rig, uid: int) -> None:
        await rig.device(uid, "phone")

        def append(st: Store, name: str, flags: frozenset[str]) -> None:
            raw = mail("x@example.com")
            box = st.get_mailbox(uid, name)
            assert box is not None
            a = st.append(box.id, NewMessage(raw, build_cache(raw), flags))
            rig.bus.publish(MailboxChanged(uid, a.mailbox_id, a.modseq, "new"))

        await rig.runner.run(lambda st: append(st, "Sent", frozenset()))
        await rig.runner.run(lambda st: append(st, "INBOX", frozenset({"\\Seen"})))
        assert await rig.flush() == 0
        await rig.db.run(lambda p: p.set_rules(uid, Rules(enabled=False)))
        await rig.deliver(mail("x@example.com"))
        assert await rig.flush() == 0
        await rig.db.run(lambda p: p.set_rules(uid, Rules(folders=("*",))))
        await rig.deliver(mail("x@example.com"))
        assert await rig.flush() == 1

    ep = run(tmp_path, scenario)
    [p] = payloads(ep, "/phone")
    assert p["new"] == 1  # only the last one: earlier ones were not alerted, nor later


class CountingStore:
    """The engine's store access, counting what it asks for."""

    def __init__(self, runner: StoreRunner) -> None:
        self.runner = runner
        self.calls = 0

    def run(self, fn: Callable[[Store], object]) -> Awaitable[object]:
        self.calls += 1
        return self.runner.run(fn)

    def read(self, fn: Callable[[Store], object]) -> Awaitable[object]:
        self.calls += 1
        return self.runner.read(fn)


def test_users_without_devices_cost_no_store_work_and_no_backlog(tmp_path: Path) -> None:
    """Most users have no device: their hints must not read the store. A device added
    later hears of mail from then on, not of what came while there was none."""

    async def scenario(rig: Rig, uid: int) -> None:
        counting = CountingStore(rig.runner)
        rig.engine._store = counting
        for i in range(3):
            await rig.deliver(mail("friend@example.com", f"unheard {i}"))
        assert await rig.flush() == 0
        assert counting.calls == 0
        phone = await rig.device(uid, "phone")
        await rig.deliver(mail("friend@example.com", "first heard"))
        assert await rig.flush() == 1
        assert counting.calls == 1
        await rig.db.run(lambda p: p.remove_device(phone.id))
        for i in range(2):
            await rig.deliver(mail("friend@example.com", f"unheard again {i}"))
        assert await rig.flush() == 0
        await rig.device(uid, "tablet")
        await rig.deliver(mail("friend@example.com", "second heard"))
        assert await rig.flush() == 1

    ep = run(tmp_path, scenario)
    [first] = payloads(ep, "/phone")
    [second] = payloads(ep, "/tablet")
    assert (first["new"], first["total"]) == (1, 4)
    assert (second["new"], second["total"]) == (1, 7)


def test_hints_heard_together_are_sorted_out_together(tmp_path: Path) -> None:
    """A burst's hints are looked up in one go: of five users who got mail at once,
    only the one with a device costs store work and gets an alert."""

    async def scenario(rig: Rig, uid: int) -> None:
        others = [f"user{i}@example.org" for i in range(4)]
        for address in others:
            await rig.runner.run(lambda st, a=address: st.create_user(a, "{PLAIN}x"))
        await rig.device(uid, "phone")
        counting = CountingStore(rig.runner)
        rig.engine._store = counting
        items = [([a], mail("friend@example.com")) for a in [*others, USER]]
        results = await rig.runner.run(lambda st: Deliverer(st, rig.bus).deliver_many(items))
        assert all(r[0].ok for r in results)
        assert await rig.flush() == 1
        assert counting.calls == 1

    ep = run(tmp_path, scenario)
    [alert] = payloads(ep, "/phone")
    assert (alert["new"], alert["total"]) == (1, 1)
