"""Password guessing: limits per client address and per account, checked before a
password reaches the hashing threads, and a hashing queue that serves known clients
first.

Why before the hash: a check costs tens of milliseconds of CPU (argon2), so a
guessing run that is refused only after hashing still fills the two hashing threads,
and then a real user's login waits behind every guess (25.8 s under a 200-connection
run, before this module). Here an attempt first takes a token from two buckets:

* its **client's** (the address; an IPv6 address by its /64, which one subscriber
  usually holds whole), so one source cannot guess fast, and
* its **account's** (the name tried, existing or not), so many sources together
  cannot guess one password fast either.

A login that succeeds gives its tokens back, so only failures use up a budget and a
NAT full of real users is not refused. An address that logged in successfully
recently is **trusted**: it has a bucket of its own instead of those two (a guessing
run against an account, or from a neighbouring address, does not lock it out), and
its checks go to the front of the hashing queue. Next come untrusted clients trying
an account without recent failures (a new device of a real user, while a guessing run
hammers a few other accounts), last the rest. The untrusted waiting lines are short;
when one is full the attempt is refused at once ("busy") rather than making everyone
wait longer.

State is in memory, per worker process, and bounded (the least recently seen keys are
forgotten), so a restart or another worker gives an attacker a fresh budget: the
limits bound the rate, they are not a ledger. Every refusal and every failed login is
a security event (``seclog``) for fail2ban.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Literal, TypeVar

from pushmail.config import Limits
from pushmail.seclog import report

__all__ = ["GuardSettings", "HashQueue", "LoginGuard", "Refusal", "client_key"]

T = TypeVar("T")
S = TypeVar("S")
Refusal = Literal["client", "account", "busy"]

_MAX_KEYS = 100_000  # buckets remembered per kind; ~150 bytes each


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The budgets (from ``Limits``). A burst is how many failures may come at once; a
    rate is how many failures per second are allowed back after it."""

    client_burst: int = 10
    client_rate: float = 0.1
    account_burst: int = 10
    account_rate: float = 1 / 60
    trusted_burst: int = 20
    trusted_rate: float = 0.2
    trust_seconds: float = 24 * 3600.0
    hash_threads: int = 2  # checks running at once (the size of the hashing pool)
    hash_queue: int = 4  # checks from untrusted clients waiting; more are refused

    @classmethod
    def from_limits(cls, limits: Limits, hash_threads: int = 2) -> GuardSettings:
        return cls(
            limits.login_client_burst,
            limits.login_client_rate,
            limits.login_account_burst,
            limits.login_account_rate,
            limits.login_trusted_burst,
            limits.login_trusted_rate,
            limits.login_trust_seconds,
            hash_threads,
            limits.login_hash_queue,
        )


@functools.lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """What a client's budget is keyed by: its IPv4 address, its IPv6 /64 (an
    IPv4-mapped address counts as the IPv4 one); anything else as it is."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Buckets:
    """Token buckets by key, least recently used forgotten past ``_MAX_KEYS``."""

    def __init__(self, burst: int, rate: float, clock: Callable[[], float]) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._clock = clock
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def available(self, key: str) -> bool:
        return self._tokens(key, self._clock()) >= 1.0

    def tokens(self, key: str) -> float:
        return self._tokens(key, self._clock())

    def take(self, key: str, amount: float = 1.0) -> None:
        now = self._clock()
        self._state[key] = (self._tokens(key, now) - amount, now)
        self._state.move_to_end(key)
        if len(self._state) > _MAX_KEYS:
            self._state.popitem(last=False)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._state.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)


class HashQueue:
    """At most ``threads`` password checks at once. Waiting checks are served by tier:
    0 (a trusted client) first, then 1 (an untrusted client trying an account that has
    no recent failures), then 2 (the rest: what a guessing run against a few accounts
    looks like). Tiers 1 and 2 each hold at most ``limit`` waiting checks, and one
    untrusted client at most ``per_client`` running or waiting; ``run`` returns None
    beyond these, so no source fills the queue and nobody waits behind a long one.
    Loop-side only: the executor does the work."""

    def __init__(self, threads: int, limit: int, per_client: int = 2) -> None:
        self._threads = max(1, threads)
        self._limit = limit
        self._per_client = per_client
        self._clients: dict[str, int] = {}
        self._busy = 0
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque(), deque())

    async def run(
        self,
        executor: Executor | None,
        tier: int,
        client: str,
        fn: Callable[..., T],
        *args: object,
    ) -> T | None:
        held = self._clients.get(client, 0)
        if tier and held >= self._per_client:
            return None
        self._clients[client] = held + 1
        try:
            return await self._run(executor, tier, fn, *args)
        finally:
            left = self._clients.pop(client) - 1
            if left:
                self._clients[client] = left

    async def _run(
        self, executor: Executor | None, tier: int, fn: Callable[..., T], *args: object
    ) -> T | None:
        if self._busy >= self._threads:
            line = self._waiting[tier]
            if tier and len(line) >= self._limit:
                return None
            turn = asyncio.get_running_loop().create_future()
            line.append(turn)
            try:
                await turn  # the slot of a finished check is handed over: _busy stays
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()
                else:
                    line.remove(turn)
                raise
        else:
            self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        finally:
            self._release()

    def _release(self) -> None:
        for line in self._waiting:
            while line:
                turn = line.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._busy -= 1

    def waiting(self) -> int:
        return sum(len(line) for line in self._waiting)


class LoginGuard:
    """One per worker, shared by IMAP, submission and the web API. For each attempt:
    ``admit`` (before any password check), then ``check`` (the hashing queue) unless
    the answer is known without hashing, then ``settle`` with the outcome."""

    def __init__(
        self, settings: GuardSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        s = self.settings = settings or GuardSettings()
        self._clock = clock
        self._clients = _Buckets(s.client_burst, s.client_rate, clock)
        self._accounts = _Buckets(s.account_burst, s.account_rate, clock)
        self._trusted_budget = _Buckets(s.trusted_burst, s.trusted_rate, clock)
        self._trusted: OrderedDict[str, float] = OrderedDict()  # client key -> until
        self.queue = HashQueue(s.hash_threads, s.hash_queue)

    def trusted(self, client: str) -> bool:
        until = self._trusted.get(client_key(client))
        return until is not None and until > self._clock()

    def blocked(self, service: str, client: str, account: str | None = None) -> bool:
        """True (logged) when ``client`` has no budget left for any account: a cheap
        first check, before the account is even looked up."""
        key = client_key(client)
        budget = self._trusted_budget if self.trusted(client) else self._clients
        if budget.available(key):
            return False
        report("auth-limited", service, client, account, limit="client")
        return True

    def admit(self, service: str, client: str, account: str) -> Refusal | None:
        """Take this attempt's tokens; the refusal (logged) when a budget is spent."""
        key = client_key(client)
        if self.trusted(client):
            if self._trusted_budget.available(key):
                self._trusted_budget.take(key)
                return None
            refusal: Refusal = "client"
        elif not self._clients.available(key):
            refusal = "client"
        elif not self._accounts.available(account):
            refusal = "account"
        else:
            self._clients.take(key)
            self._accounts.take(account)
            return None
        report("auth-limited", service, client, account, limit=refusal)
        return refusal

    async def check(
        self,
        service: str,
        client: str,
        account: str,
        executor: Executor | None,
        verify: Callable[[S, str], bool],
        stored: S,
        password: str,
    ) -> bool | None:
        """``verify(stored, password)`` through the hashing queue; None (logged) when
        the queue is full."""
        if self.trusted(client):
            tier = 0
        else:  # this attempt's own token is already taken: "quiet" is at most one short
            tier = 1 if self._accounts.tokens(account) >= self.settings.account_burst - 1 else 2
        ok = await self.queue.run(executor, tier, client_key(client), verify, stored, password)
        if ok is None:
            report("auth-limited", service, client, account, limit="busy")
        return ok

    def settle(self, service: str, client: str, account: str, ok: bool | None) -> None:
        """The outcome of an admitted attempt: True gives its tokens back and trusts
        the client; None (never checked: busy) gives them back; False is a failed
        login, logged."""
        key = client_key(client)
        if ok is False:
            report("auth-failed", service, client, account)
            return
        trusted = self.trusted(client)
        if trusted:
            self._trusted_budget.take(key, -1.0)
        else:
            self._clients.take(key, -1.0)
            self._accounts.take(account, -1.0)
        if ok:
            self._trusted[key] = self._clock() + self.settings.trust_seconds
            self._trusted.move_to_end(key)
            if len(self._trusted) > _MAX_KEYS:
                self._trusted.popitem(last=False)
