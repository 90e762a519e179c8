"""Accepting IMAP connections ourselves, so that running out of descriptors pauses
accepting instead of spinning.

asyncio's ``create_server`` accepts in a loop of up to ``backlog`` calls per wake-up.
When ``accept()`` fails with ``EMFILE`` it removes the listener for a second, but
(CPython 3.11-3.13) does not leave the loop: with our backlog of 4,096 every wake-up
made 4,096 failing calls, logged each, and armed 4,096 one-second timers that all
re-added the listener (issue 15 item 3: 92% CPU and 782,182 log lines in two minutes;
``bench/abuse.py`` reproduces 2.2 million). Here a failed ``accept()`` ends the round,
every listener of the worker pauses for ``pause`` seconds, and the condition is
reported through ``ExhaustionLog`` (once per interval).

Accepted sockets become connections through ``loop.connect_accepted_socket``, as
asyncio's own server does through an equivalent coroutine per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from pushmail import seclog
from pushmail.imap.connection import BYE_PER_ADDRESS
from pushmail.net.conncap import ConnectionGate, ExhaustionLog, peer_host

log = logging.getLogger("pushmail.net")

_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_PAUSE = 1.0  # seconds without accepting after a failure for lack of resources
_BATCH = 256  # accept() calls per wake-up: a connect storm is served in big rounds


def listening_sockets(host: str, port: int, reuse_port: bool, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of ``host``."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _name, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Acceptor:
    """Accepts on ``sockets`` and hands each connection to ``factory``'s protocol.

    ``close``/``wait_closed`` as an ``asyncio.Server``'s; ``sockets`` for the port."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        factory: Callable[[], asyncio.Protocol],
        sockets: list[socket.socket],
        exhaustion: ExhaustionLog,
        pause: float = _PAUSE,
        gate: ConnectionGate | None = None,
        farewell: bytes = b"",
    ) -> None:
        self._loop = loop
        self._factory = factory
        self.sockets = sockets
        self._exhaustion = exhaustion
        self._pause = pause
        self._paused: asyncio.TimerHandle | None = None
        self._closed = False
        self._gate = gate
        self._farewell = farewell
        # Accepted, not yet a connection (its protocol's ``connection_made`` comes a
        # loop turn later): the gate's count includes these, or one round of
        # accepts could pass the cap by a whole batch.
        self.pending = 0

    def start(self) -> None:
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._ready, sock)

    def _stop_reading(self) -> None:
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())

    def _ready(self, sock: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._exhausted(exc)
                else:
                    log.warning("accept() failed: %s", exc)
                return
            conn.setblocking(False)
            gate = self._gate
            if gate is not None and gate.address_full(peer_host(_addr)):
                # Refused here, before a transport exists: a burst from one address
                # costs no connection objects and no descriptors held until a close.
                self._refuse_address(gate, conn, peer_host(_addr))
                continue
            if gate is not None and gate.full():
                victim = gate.make_room()
                if victim is None:
                    self._refuse(gate, conn, _addr)
                    continue
                victim.close(self._farewell)
            self.pending += 1
            self._loop.create_task(self._connect(conn))

    def _refuse(self, gate: ConnectionGate, conn: socket.socket, addr: object) -> None:
        """Over the worker's cap: a farewell if the socket takes it at once, and the
        descriptor back right away (no transport, no task)."""
        gate.refuse("imap", peer_host(addr))
        if self._farewell:
            with contextlib.suppress(OSError):
                conn.send(self._farewell)
        conn.close()

    def _refuse_address(self, gate: ConnectionGate, conn: socket.socket, client: str) -> None:
        gate.refused += 1
        seclog.report("prelogin-limit", "imap", client, limit=gate.per_address)
        if self._farewell:
            with contextlib.suppress(OSError):
                conn.send(BYE_PER_ADDRESS)
        conn.close()

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # the peer left before the transport was made
            log.debug("connection lost while accepting: %s", exc)
            conn.close()
        finally:
            self.pending -= 1

    def _exhausted(self, exc: OSError) -> None:
        """No descriptor (or memory) for a new connection: stop accepting on every
        socket for a while; what waits in the kernel's queue keeps."""
        self._exhaustion.report(exc)
        if self._paused is None and not self._closed:
            self._stop_reading()
            self._paused = self._loop.call_later(self._pause, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if not self._closed:
            self.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._paused is not None:
            self._paused.cancel()
        else:
            self._stop_reading()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        return None
