"""Security events in one stable line format, for operators and tools such as fail2ban.

Every event an operator may act on (a failed login, a refused recipient, a relay
attempt, a limit hit, protocol abuse) is logged on the ``pushmail.security`` logger as
one line::

    <event> service=<service> client=<address> [user=<account>] [key=value ...]

for example ``auth-failed service=imap client=203.0.113.7 user=alice@example.org``.
The event names and keys are documented in ``docs/operations.md`` and are a stable
interface: a fail2ban filter matches on them. Values a peer chose (an account name, a
recipient) are escaped so that a line can never be forged or split: anything outside
printable ASCII, spaces, quotes, ``=`` and ``%`` become ``%XX``, and they are cut at
128 characters.

Why rate-limited: an attacker decides how many events happen, so unlimited logging
would let one fill the disk. Each (event, client) pair may log a burst of
``_PER_CLIENT_BURST`` lines and then one line every ``_PER_CLIENT_EVERY`` seconds,
enough for fail2ban's usual ``maxretry`` to see every client it must ban; all events
together are capped per process at ``_GLOBAL_RATE`` lines a second. What is left out
is counted and reported in one ``suppressed`` line a minute at most.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("pushmail.security")

_PER_CLIENT_BURST = 10
_PER_CLIENT_EVERY = 6.0  # seconds per line once the burst is spent
_GLOBAL_RATE = 50.0  # lines per second, per process
_GLOBAL_BURST = 200.0
_MAX_CLIENTS = 10_000  # (event, client) buckets remembered; the oldest are forgotten
_SUMMARY_EVERY = 60.0
_MAX_VALUE = 128
_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.@+-_:/[]!#$&*,;<>?^{|}~()"
)


def escape(value: str) -> str:
    """A peer-chosen value made safe for one log line (see the module docstring)."""
    out = []
    for ch in value[:_MAX_VALUE]:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out) or '""'


class SecurityLog:
    """The rate-limited writer behind :func:`report` (one per process; tests make
    their own with a fake clock)."""

    def __init__(
        self, logger: logging.Logger = log, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self._clock = clock
        # (event, client) -> (tokens, last refill time)
        self._clients: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._global = (_GLOBAL_BURST, clock())
        self._suppressed: dict[str, int] = {}
        self._last_summary = clock()

    def report(
        self,
        event: str,
        service: str,
        client: str,
        user: str | None = None,
        level: int = logging.WARNING,
        **fields: str | int,
    ) -> bool:
        """Log one event unless over a limit; True when it was written."""
        if not self._log.isEnabledFor(level):
            return False
        now = self._clock()
        self._maybe_summarise(now)
        if not (self._take_client(event, client, now) and self._take_global(now)):
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return False
        parts = [event, f"service={service}", f"client={escape(client)}"]
        if user is not None:
            parts.append(f"user={escape(user)}")
        parts.extend(f"{k}={escape(str(v))}" for k, v in fields.items())
        self._log.log(level, "%s", " ".join(parts))
        return True

    def _take_client(self, event: str, client: str, now: float) -> bool:
        key = (event, client)
        tokens, last = self._clients.pop(key, (float(_PER_CLIENT_BURST), now))
        tokens = min(float(_PER_CLIENT_BURST), tokens + (now - last) / _PER_CLIENT_EVERY)
        ok = tokens >= 1.0
        self._clients[key] = (tokens - 1.0 if ok else tokens, now)
        if len(self._clients) > _MAX_CLIENTS:
            self._clients.popitem(last=False)
        return ok

    def _take_global(self, now: float) -> bool:
        tokens, last = self._global
        tokens = min(_GLOBAL_BURST, tokens + (now - last) * _GLOBAL_RATE)
        ok = tokens >= 1.0
        self._global = (tokens - 1.0 if ok else tokens, now)
        return ok

    def _maybe_summarise(self, now: float) -> None:
        if not self._suppressed or now - self._last_summary < _SUMMARY_EVERY:
            return
        counts = " ".join(f"{k}={v}" for k, v in sorted(self._suppressed.items()))
        self._log.warning("suppressed %s", counts)
        self._suppressed.clear()
        self._last_summary = now


_default = SecurityLog()


def report(
    event: str,
    service: str,
    client: str,
    user: str | None = None,
    level: int = logging.WARNING,
    **fields: str | int,
) -> bool:
    """Log a security event on the process's shared, rate-limited writer."""
    return _default.report(event, service, client, user, level, **fields)
