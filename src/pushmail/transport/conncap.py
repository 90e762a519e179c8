"""Caps on connections, so that no peer can use up a worker's file descriptors.

Without them (issue 15 item 3) 15,000 idle connections that never logged in were all
accepted and held for the 30-minute autologout, which any byte reset; at 21,000 the
process ran out of descriptors, real logins timed out and asyncio logged every failed
``accept()``. Four rules, one object per worker (``ConnectionGate``):

- **A cap per worker** on open connections (IMAP, hibernated IMAP, TLS handshakes,
  SMTP/submission/LMTP), below the process's descriptor limit: the rest of the
  descriptors are a reserve for the store, the event bus, the push engine's requests
  and log files. A connection over the cap is told so and closed at once.
- **A cap per client address** on connections that have not logged in yet.
- **A pre-login deadline** counted from the connection's start and not reset by
  anything the client sends, much shorter than the autologout.
- **Descriptor exhaustion pauses accepting and is logged once per interval.** The
  IMAP listeners accept through ``transport/acceptor.py``, which stops every listener of
  the worker for a second after ``EMFILE``/``ENFILE``; the failures asyncio's own
  servers (SMTP, LMTP) report to the loop's exception handler are rate-limited
  here (``ExhaustionLog``).

What an idle logged-in session costs is unchanged: the gate holds entries for
pre-login connections only.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, Protocol

from pushmail import seclog

log = logging.getLogger("pushmail.net")

# Descriptors kept back from connections: the store (database, WAL, shared memory,
# twice: writer and reader), the event bus and its peers' interest files, the push
# engine's outgoing requests, listeners, logs. A tenth of the limit, within bounds.
_MIN_RESERVE = 64
_MAX_RESERVE = 4096
# How often descriptor exhaustion may be logged.
_EXHAUSTED_LOG_EVERY = 60.0
# Pre-login connections closed to make room whose descriptors are not yet released
# (their close completes a loop turn later); the reserve covers this many.
_MAX_EVICTING = 32


def descriptor_cap(configured: int = 0) -> int:
    """Connections one worker may hold: ``configured`` if set (> 0), else the soft
    ``RLIMIT_NOFILE`` minus a reserve."""
    if configured > 0:
        return configured
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    reserve = min(_MAX_RESERVE, max(_MIN_RESERVE, soft // 10))
    return max(16, soft - reserve)


class Closable(Protocol):
    def close(self, farewell: bytes = b"") -> None: ...


class ConnectionGate:
    """The caps of one worker; see the module docstring."""

    def __init__(
        self,
        limit: int,
        per_address: int,
        prelogin_timeout: float,
        count: Callable[[], int],
    ) -> None:
        self.limit = limit
        self.per_address = per_address
        self.prelogin_timeout = prelogin_timeout
        self._count = count
        # Pre-login connections: when each started and from where.
        self._prelogin: dict[Closable, tuple[str, float]] = {}
        self._by_address: dict[str, int] = {}
        self._evicting: set[Closable] = set()
        self.evicted = 0
        self.refused = 0  # connections closed over a cap, for stats and tests
        self.timed_out = 0

    def open_connections(self) -> int:
        return self._count()

    def counts(self) -> dict[str, int]:
        """For the worker's stats file."""
        return {
            "connection_cap": self.limit,
            "prelogin": len(self._prelogin),
            "refused": self.refused,
            "evicted": self.evicted,
            "prelogin_timeouts": self.timed_out,
        }

    def full(self) -> bool:
        """Whether a new connection would pass the cap (checked when one arrives).
        Connections being closed to make room no longer count."""
        return self._count() - len(self._evicting) >= self.limit

    def make_room(self) -> Closable | None:
        """At the cap, the oldest connection that has not logged in yet gives way to
        a new one (as Dovecot's login processes do): a flood of idle connections
        then only ever delays a real client by its own login, instead of locking
        it out until the flood's connections time out. The caller closes the
        returned connection; None if there is none (or too many closing)."""
        if not self._prelogin or len(self._evicting) >= _MAX_EVICTING:
            return None
        victim = next(iter(self._prelogin))  # dicts keep insertion order: the oldest
        seclog.report("prelogin-evicted", "imap", self._prelogin[victim][0], limit=self.limit)
        self.leave(victim)
        self._evicting.add(victim)
        self.evicted += 1
        return victim

    def gone(self, conn: Closable) -> None:
        """A connection has closed: it holds no descriptor any more."""
        self.leave(conn)
        self._evicting.discard(conn)

    def refuse(self, service: str, client: str) -> None:
        """Count and log a connection closed over the per-worker cap."""
        self.refused += 1
        seclog.report("connection-limit", service, client, limit=self.limit)

    def address_full(self, client: str) -> bool:
        """Whether ``client`` already has its share of pre-login connections."""
        return 0 < self.per_address <= self._by_address.get(client, 0)

    def enter(self, conn: Closable, client: str) -> bool:
        """A connection that has not logged in yet: False if its address already
        has ``per_address`` such connections (the caller closes it)."""
        n = self._by_address.get(client, 0)
        if self.per_address > 0 and n >= self.per_address:
            self.refused += 1
            return False
        self._by_address[client] = n + 1
        self._prelogin[conn] = (client, time.monotonic())
        return True

    def leave(self, conn: Closable) -> None:
        """Logged in, or gone: no longer counted as pre-login."""
        entry = self._prelogin.pop(conn, None)
        if entry is None:
            return
        client = entry[0]
        n = self._by_address.get(client, 1) - 1
        if n > 0:
            self._by_address[client] = n
        else:
            self._by_address.pop(client, None)

    def prelogin_count(self, client: str | None = None) -> int:
        if client is None:
            return len(self._prelogin)
        return self._by_address.get(client, 0)

    def expire(self, now: float | None = None) -> list[tuple[Closable, str]]:
        """Pre-login connections past their deadline (removed from the gate); the
        caller closes them."""
        if self.prelogin_timeout <= 0 or not self._prelogin:
            return []
        cutoff = (time.monotonic() if now is None else now) - self.prelogin_timeout
        late = [(c, client) for c, (client, t0) in self._prelogin.items() if t0 <= cutoff]
        for conn, _client in late:
            self.leave(conn)
        self.timed_out += len(late)
        return late


class ExhaustionLog:
    """A loop exception handler that reports failed ``accept()`` calls (descriptors
    or memory used up) once per interval instead of once per attempt, and passes
    everything else on to the handler that was there before."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float = _EXHAUSTED_LOG_EVERY):
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self._every = every
        self._last = -every
        self.suppressed = 0
        self.reported = 0

    def install(self) -> None:
        self._loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if not message.startswith("socket.accept() out of system resource"):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        exc = context.get("exception")
        self.report(exc if isinstance(exc, OSError) else None)

    def report(self, exc: OSError | None) -> None:
        """One failed ``accept()``: logged if none was in the last interval."""
        now = time.monotonic()
        if now - self._last < self._every:
            self.suppressed += 1
            return
        self._last = now
        self.reported += 1
        seclog.report(
            "fd-exhausted",
            "server",
            "-",
            error=str(getattr(exc, "strerror", None) or exc or "accept failed"),
            suppressed=self.suppressed,
        )
        self.suppressed = 0


def peer_host(peer: object) -> str:
    """The address part of a ``peername`` ("unix" for a Unix socket)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unix" if isinstance(peer, str) else "unknown"


class Refuser(asyncio.Protocol):
    """What a connection over the per-worker cap gets: a farewell and a close."""

    def __init__(self, gate: ConnectionGate, service: str, farewell: bytes) -> None:
        self._gate = gate
        self._service = service
        self._farewell = farewell

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        self._gate.refuse(self._service, peer_host(t.get_extra_info("peername")))
        if self._farewell:
            t.write(self._farewell)
        t.close()
