"""The HTTP API's listener: caps and deadlines in front of aiohttp (slowloris).

aiohttp alone keeps a connection that never finishes its request headers for as
long as the client likes, and asyncio's TLS transport gives each connection a 256 KB
buffer: 2,000 TLS connections that sent half a request held +527 MiB. Here:

- a connection is admitted only under a global cap and a cap per client address,
  checked before the TLS handshake, so refused ones cost a socket for a moment;
- TLS is the project's lean layer (``net/tls_layer.py``), not asyncio's;
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
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pushmail import seclog
from pushmail.config import PushSettings
from pushmail.net.tls_layer import TlsLayer

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

    def admit(self, address: str) -> tuple[str, int] | None:
        """Count a new connection in, or say which cap refuses it."""
        if self.total >= self.limits.max_connections:
            return "max-connections", self.limits.max_connections
        held = self.per_address.get(address, 0)
        if held >= self.limits.max_per_address:
            return "max-per-address", self.limits.max_per_address
        self.total += 1
        self.per_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
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
            try:
                await asyncio.wait_for(request.read(), limits.body_timeout)
            except TimeoutError:
                guard.timed_out("body")
                resp = web.json_response({"error": "request body too slow"}, status=408)
                resp.force_close()  # answered, then closed
                return resp
            try:
                return await handler(request)
            finally:
                guard.deadline("headers", limits.header_timeout)

        return middleware


class _Guard(asyncio.Protocol):
    __slots__ = ("_address", "_conns", "_factory", "_next", "_timer", "_tls", "_transport",
                 "handler")  # fmt: skip

    def __init__(
        self, conns: Connections, factory: Callable[[], Any], tls: ssl.SSLContext | None
    ) -> None:
        self._conns = conns
        self._factory = factory
        self._tls = tls
        self._address: str | None = None
        self._next: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self.handler: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "-"
        refused = self._conns.admit(address)
        if refused is not None:
            reason, limit = refused
            seclog.report("web-connection-refused", "web", address, reason=reason, limit=limit)
            transport.abort()
            return
        self._address = address
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
        deadline, the server is working)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if stage is not None and self._address is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(seconds, self.timed_out, stage)

    def timed_out(self, stage: str) -> None:
        assert self._transport is not None
        seclog.report("web-timeout", "web", self._address or "-", level=logging.INFO, stage=stage)
        if stage != "body":  # a slow body gets its 408 answer, then the close
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._next is not None:
            self._next.data_received(data)

    def eof_received(self) -> bool | None:
        return self._next.eof_received() if self._next is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is None:
            return
        self.deadline(None, 0.0)
        self._conns.release(self._address)
        self._conns.guards.pop(self.handler, None)
        self._address = None
        assert self._next is not None
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
