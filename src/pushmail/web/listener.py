"""The HTTP API's listener: caps and deadlines in front of aiohttp (slowloris).

aiohttp alone keeps a connection that never finishes its request headers for as
long as the client likes, and asyncio's TLS transport gives each connection a 256 KB
buffer: 2,000 TLS connections that sent half a request held +527 MiB. Here:

- a connection is admitted only under a cap per client address and a global cap,
  checked before the TLS handshake, so refused ones cost a socket for a moment; at
  the global cap, the connection that has waited longest for its request is closed
  to make room (``Connections.admit`` says why);
- TLS is the project's lean layer (``transport/tls_layer.py``), not asyncio's;
- each stage has a deadline: the TLS handshake, the request headers (from the
  connection, or from the end of the previous request on a kept-alive one), and the
  body (``body_middleware``). A handler that runs long (a password check) has none:
  that is the server's time, not the client's.

Per connection: ``_Guard`` is the protocol asyncio sees (counts, deadlines); under it
the optional ``TlsLayer``; then ``_Tap``, which sees the handshake end; then aiohttp's
``RequestHandler``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pushmail import seclog
from pushmail.config import PushSettings
from pushmail.transport.tls_layer import TlsLayer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    tls_handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 512
    max_per_address: int = 32

    @classmethod
    def of(cls, settings: PushSettings) -> ListenerLimits:
        return cls(
            tls_handshake_timeout=settings.http_tls_handshake_timeout,
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            max_connections=settings.http_max_connections,
            max_per_address=settings.http_max_per_address,
        )


class Connections:
    """Who is connected (counts per address) and which guard serves which aiohttp
    handler (so a middleware can move that connection's deadline)."""

    def __init__(self, limits: ListenerLimits) -> None:
        self.limits = limits
        self.total = 0
        self.per_address: dict[str, int] = {}
        self.guards: dict[object, _Guard] = {}  # RequestHandler -> its guard
        # Connections waiting for a handshake or a request's headers, oldest first:
        # what a new connection may push out when the global cap is reached.
        self.waiting: OrderedDict[_Guard, None] = OrderedDict()

    def admit(self, client: str) -> tuple[str, int] | None:
        """Count a new connection in, or say which cap refuses it.

        At the global cap, the connection that has waited longest without sending a
        request is closed to make room, rather than refusing the new one: else an
        attacker with many addresses who fills the cap with clients that never finish
        a request keeps everyone else out until the header deadline, again and again.
        This way he only pushes out his own oldest, and an honest client's request
        (which is quick) is through before it could be pushed out."""
        address = client_key(client)
        if self.per_address.get(address, 0) >= self.limits.max_per_address:
            return "max-per-address", self.limits.max_per_address
        if self.total >= self.limits.max_connections:
            if not self.waiting:
                return "max-connections", self.limits.max_connections
            next(iter(self.waiting)).evict()  # may be this address's own: count after it
        self.total += 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return None

    def release(self, client: str) -> None:
        address = client_key(client)
        self.total -= 1
        left = self.per_address[address] - 1
        if left:
            self.per_address[address] = left
        else:
            del self.per_address[address]

    def body_middleware(self) -> Any:
        """Headers are in when a request reaches the application: stop the header
        deadline, read the body within ``body_timeout`` (408 otherwise), then run
        the handler without a deadline; afterwards the next request's headers are
        due within ``header_timeout``."""
        limits = self.limits

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            guard = self.guards.get(request.protocol)
            if guard is None:  # served by another site (tests calling make_app directly)
                return await handler(request)
            guard.deadline(None, 0.0)
            try:  # whatever happens (a 413 too), the next request's headers are due
                try:
                    await asyncio.wait_for(request.read(), limits.body_timeout)
                except TimeoutError:
                    guard.timed_out("body")
                    resp = web.json_response({"error": "request body too slow"}, status=408)
                    resp.force_close()  # answered, then closed
                    return resp
                return await handler(request)
            finally:
                guard.deadline("headers", limits.header_timeout)

        return middleware


def client_key(address: str) -> str:
    """What the per-address cap counts: the IPv4 address, or the IPv6 /64 (one
    site's subnet: whoever has one address there has 2**64 of them)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return address


class _Guard(asyncio.Protocol):
    __slots__ = ("_address", "_conns", "_counted", "_factory", "_next", "_timer", "_tls",
                 "_transport", "handler")  # fmt: skip

    def __init__(
        self, conns: Connections, factory: Callable[[], Any], tls: ssl.SSLContext | None
    ) -> None:
        self._conns = conns
        self._factory = factory
        self._tls = tls
        self._address = "-"
        self._counted = False
        self._next: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self.handler: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._address = address = str(peer[0]) if peer else "-"
        refused = self._conns.admit(address)
        if refused is not None:
            reason, limit = refused
            seclog.report("web-connection-refused", "web", address, reason=reason, limit=limit)
            transport.abort()
            return
        self._counted = True
        self.handler = self._factory()
        self._conns.guards[self.handler] = self
        tap = _Tap(self, self.handler)
        if self._tls is not None:
            self.deadline("handshake", self._conns.limits.tls_handshake_timeout)
            self._next = TlsLayer(tap, self._tls)
        else:
            self._next = tap
        self._next.connection_made(transport)

    def ready(self) -> None:
        """The TLS handshake is done (or there is none): the headers are due."""
        self.deadline("headers", self._conns.limits.header_timeout)

    def deadline(self, stage: str | None, seconds: float) -> None:
        """Close the connection if ``stage`` is not over in ``seconds`` (None: no
        deadline, the server is working on a request)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._conns.waiting.pop(self, None)
        if stage is not None and self._counted:
            self._conns.waiting[self] = None  # the newest waiting one
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(seconds, self.timed_out, stage)

    def timed_out(self, stage: str) -> None:
        assert self._transport is not None
        seclog.report("web-timeout", "web", self._address, level=logging.INFO, stage=stage)
        if stage != "body":  # a slow body gets its 408 answer, then the close
            self._transport.abort()

    def evict(self) -> None:
        """Closed to make room for a new connection (``Connections.admit``)."""
        assert self._transport is not None
        limit = self._conns.limits.max_connections
        seclog.report("web-connection-evicted", "web", self._address, limit=limit)
        self._uncount()
        self._transport.abort()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.deadline(None, 0.0)
            self._conns.release(self._address)
            self._conns.guards.pop(self.handler, None)

    def data_received(self, data: bytes) -> None:
        if self._next is not None:
            self._next.data_received(data)

    def eof_received(self) -> bool | None:
        return self._next.eof_received() if self._next is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._uncount()
        if self._next is not None:  # admitted: the layers under it must hear of it
            self._next.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._next is not None:
            self._next.pause_writing()

    def resume_writing(self) -> None:
        if self._next is not None:
            self._next.resume_writing()


class _Tap(asyncio.Protocol):
    """Between the TLS layer and aiohttp: tells the guard when the handshake ends."""

    __slots__ = ("_guard", "_inner")

    def __init__(self, guard: _Guard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard.ready()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through ``_Guard`` (see module docstring)."""

    __slots__ = ("_conns", "_host", "_port", "_tls")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        conns: Connections,
    ) -> None:
        super().__init__(runner)
        self._host, self._port, self._tls, self._conns = host, port, tls, conns

    @property
    def name(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        factory = self._runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Guard(self._conns, factory, self._tls), self._host, self._port
        )
