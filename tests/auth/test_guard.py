"""The password-guessing limits and the hashing queue, on a fake clock."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pushmail.auth.guard import GuardSettings, HashQueue, LoginGuard, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, **kw: float) -> LoginGuard:
    return LoginGuard(GuardSettings(**kw), clock)  # type: ignore[arg-type]


def test_client_keys() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("local") == "local"


def test_failures_from_one_address_are_refused_past_the_burst() -> None:
    clock = Clock()
    g = guard(clock, client_burst=3, client_rate=0.5, account_burst=100)
    for i in range(3):
        assert g.admit("imap", "198.51.100.1", f"u{i}@x") is None
        g.settle("imap", "198.51.100.1", f"u{i}@x", False)
    assert g.admit("imap", "198.51.100.1", "other@x") == "client"
    assert g.admit("imap", "198.51.100.2", "other@x") is None  # another address
    clock.now += 2.0  # one token back at 0.5/s
    assert g.admit("imap", "198.51.100.1", "other@x") is None
    assert g.admit("imap", "198.51.100.1", "other@x") == "client"


def test_ipv6_neighbours_share_a_budget() -> None:
    g = guard(Clock(), client_burst=2, account_burst=100)
    assert g.admit("imap", "2001:db8::1", "a@x") is None
    assert g.admit("imap", "2001:db8::2", "a@x") is None
    assert g.admit("imap", "2001:db8::3", "a@x") == "client"
    assert g.admit("imap", "2001:db8:0:1::3", "a@x") is None


def test_many_addresses_against_one_account_hit_the_account_limit() -> None:
    g = guard(Clock(), client_burst=10, account_burst=4)
    for i in range(4):
        assert g.admit("web", f"192.0.2.{i}", "alice@x") is None
        g.settle("web", f"192.0.2.{i}", "alice@x", False)
    assert g.admit("web", "192.0.2.99", "alice@x") == "account"
    assert g.admit("web", "192.0.2.99", "bob@x") is None


def test_successes_give_tokens_back_and_trust_the_address() -> None:
    clock = Clock()
    g = guard(clock, client_burst=2, account_burst=2, trusted_burst=3, trust_seconds=60)
    for _ in range(50):  # a NAT full of users logging in: never refused
        assert g.admit("imap", "192.0.2.1", "alice@x") is None
        g.settle("imap", "192.0.2.1", "alice@x", True)
    assert g.trusted("192.0.2.1")
    for _ in range(2):  # an attack on alice from elsewhere spends her account budget
        assert g.admit("imap", "203.0.113.9", "alice@x") is None
        g.settle("imap", "203.0.113.9", "alice@x", False)
    assert g.admit("imap", "203.0.113.10", "alice@x") == "account"
    assert g.admit("imap", "192.0.2.1", "alice@x") is None  # the trusted address still can
    g.settle("imap", "192.0.2.1", "alice@x", False)
    assert g.admit("imap", "192.0.2.1", "alice@x") is None
    g.settle("imap", "192.0.2.1", "alice@x", False)
    assert g.admit("imap", "192.0.2.1", "alice@x") is None
    g.settle("imap", "192.0.2.1", "alice@x", False)
    assert g.admit("imap", "192.0.2.1", "alice@x") == "client"  # its own budget, spent
    clock.now += 61
    assert not g.trusted("192.0.2.1")


def test_refusals_and_failures_are_security_events(caplog: pytest.LogCaptureFixture) -> None:
    g = guard(Clock(), client_burst=1, account_burst=100)
    with caplog.at_level(logging.INFO, logger="pushmail.security"):
        assert g.admit("submission", "192.0.2.77", "eve@x") is None
        g.settle("submission", "192.0.2.77", "eve@x", False)
        assert g.admit("submission", "192.0.2.77", "eve@x") == "client"
    lines = [r.getMessage() for r in caplog.records]
    assert "auth-failed service=submission client=192.0.2.77 user=eve@x" in lines
    assert "auth-limited service=submission client=192.0.2.77 user=eve@x limit=client" in lines


def test_hash_queue_serves_trusted_first_and_sheds_untrusted() -> None:
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        if name == "blocker":
            gate.wait(10)
        order.append(name)
        return name

    async def go() -> list[str | None]:
        q = HashQueue(threads=1, limit=2)
        pool = ThreadPoolExecutor(max_workers=1)
        blocker = asyncio.ensure_future(q.run(pool, 2, "b", job, "blocker"))
        await asyncio.sleep(0.05)
        low = [asyncio.ensure_future(q.run(pool, 2, f"c{i}", job, f"low{i}")) for i in range(3)]
        high = asyncio.ensure_future(q.run(pool, 0, "t", job, "high"))
        await asyncio.sleep(0.05)
        assert q.waiting() == 3  # low2 was shed at once
        assert low[2].done() and low[2].result() is None
        gate.set()
        results = await asyncio.gather(blocker, *low, high)
        pool.shutdown()
        return results

    results = asyncio.run(go())
    assert results == ["blocker", "low0", "low1", None, "high"]
    assert order == ["blocker", "high", "low0", "low1"]


def test_hash_queue_survives_a_cancelled_waiter() -> None:
    async def go() -> str | None:
        q = HashQueue(threads=1, limit=5)
        pool = ThreadPoolExecutor(max_workers=1)
        first = asyncio.ensure_future(
            q.run(pool, 2, "a", lambda: asyncio.run(asyncio.sleep(0.1)) or "a")
        )
        await asyncio.sleep(0.01)
        waiter = asyncio.ensure_future(q.run(pool, 2, "b", lambda: "b"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await first
        last = await asyncio.wait_for(q.run(pool, 2, "b", lambda: "c"), 5)
        pool.shutdown()
        return last

    assert asyncio.run(go()) == "c"


def test_blocked_is_the_client_budget_alone() -> None:
    g = guard(Clock(), client_burst=1, account_burst=1)
    assert not g.blocked("imap", "192.0.2.5")
    assert g.admit("imap", "192.0.2.5", "a@x") is None
    g.settle("imap", "192.0.2.5", "a@x", False)
    assert g.blocked("imap", "192.0.2.5")
    assert not g.blocked("imap", "192.0.2.6")  # though the account "a@x" is spent


def test_hash_queue_one_untrusted_client_holds_at_most_two_places() -> None:
    gate = threading.Event()

    async def go() -> list[str | None]:
        q = HashQueue(threads=1, limit=10, per_client=2)
        pool = ThreadPoolExecutor(max_workers=1)
        mine = [asyncio.ensure_future(q.run(pool, 2, "x", gate.wait, 10)) for _ in range(3)]
        other = asyncio.ensure_future(q.run(pool, 2, "y", lambda: "other"))
        trusted = asyncio.ensure_future(q.run(pool, 0, "x", lambda: "trusted"))
        await asyncio.sleep(0.05)
        assert mine[2].done() and mine[2].result() is None
        gate.set()
        done = await asyncio.gather(other, trusted)
        await asyncio.gather(*mine)
        pool.shutdown()
        return done

    assert asyncio.run(go()) == ["other", "trusted"]


def test_hash_queue_serves_quiet_accounts_before_hammered_ones() -> None:
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        if name == "blocker":
            gate.wait(10)
        order.append(name)
        return name

    async def go() -> None:
        q = HashQueue(threads=1, limit=2)
        pool = ThreadPoolExecutor(max_workers=1)
        blocker = asyncio.ensure_future(q.run(pool, 2, "a", job, "blocker"))
        await asyncio.sleep(0.05)
        guesses = [
            asyncio.ensure_future(q.run(pool, 2, f"g{i}", job, f"guess{i}")) for i in range(3)
        ]
        newcomer = asyncio.ensure_future(q.run(pool, 1, "n", job, "newcomer"))
        await asyncio.sleep(0.05)
        assert guesses[2].done() and guesses[2].result() is None  # tier 2 is full
        gate.set()
        await asyncio.gather(blocker, newcomer, *guesses)
        pool.shutdown()

    asyncio.run(go())
    assert order == ["blocker", "newcomer", "guess0", "guess1"]


def test_guard_tiers_by_trust_and_account_failures() -> None:
    seen: list[int] = []

    class Spy(HashQueue):
        async def run(
            self, executor: object, tier: int, client: str, fn: object, *args: object
        ) -> object:  # type: ignore[override]
            seen.append(tier)
            return False

    g = guard(Clock(), client_burst=100, account_burst=5)
    g.queue = Spy(2, 4)

    def attempt(client: str, account: str, ok: bool = False) -> None:
        assert g.admit("imap", client, account) is None
        asyncio.run(g.check("imap", client, account, None, lambda s, p: ok, "", ""))
        g.settle("imap", client, account, ok)

    attempt("192.0.2.1", "quiet@x")  # no failures yet: tier 1
    attempt("192.0.2.1", "quiet@x")  # one failure before: tier 2
    g.settle("imap", "192.0.2.9", "me@x", True)  # a success trusts 192.0.2.9
    attempt("192.0.2.9", "quiet@x")
    assert seen == [1, 2, 0]
