"""A TCP forwarder between the watcher and the server, with faults under test control.

It runs its own event loop in a thread, so synchronous tests (and a watcher in another
process) can use it. Modes, switched at any time:

* ``pass`` — forward both ways;
* ``blackhole`` — existing connections stop forwarding in both directions without
  closing (as behind an expired NAT mapping: no FIN, no RST); new connections are
  accepted and forward nothing either;
* ``slow`` — forward, but hold each chunk ``delay`` seconds first;

and actions: ``reset_all()`` closes every connection with RST (SO_LINGER 0);
``blackhole_existing()`` black-holes only the connections open now (new ones pass);
``strip`` removes byte strings from server-to-client data (e.g. b" IDLE" from
capabilities, to make a server without IDLE; a tuple removes each); ``rewrite_up =
(old, new)`` replaces bytes in client-to-server data (to make the server refuse a
command it would accept). ``sent`` keeps every byte the clients sent (the wire log a
test reads to see which commands were used). ``nat_timeout = T`` plays a NAT that
forgets a mapping idle for T seconds: the next bytes either way find the connection
black-holed for good, or reset (RST both ways) with ``nat_reset = True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any


class _Pair:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.dead = False  # black-holed for good
        self.last = asyncio.get_running_loop().time()  # last bytes either way

    def writers(self) -> tuple[asyncio.StreamWriter, asyncio.StreamWriter]:
        return self.client, self.server


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.delay = 0.0
        self.strip: bytes | tuple[bytes, ...] = b""
        self.sent = bytearray()
        self.rewrite_up: tuple[bytes, bytes] | None = None
        self.connections = 0
        self.nat_timeout = 0.0
        self.nat_reset = False
        self._pairs: set[_Pair] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(self._listen())
        self.port: int = self._server.sockets[0].getsockname()[1]

    # -- control from the test thread -----------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        async def apply() -> None:
            self.mode, self.delay = mode, delay

        self._call(apply())

    def blackhole_existing(self) -> None:
        async def apply() -> None:
            for pair in self._pairs:
                pair.dead = True

        self._call(apply())

    def reset_all(self) -> None:
        async def apply() -> None:
            for pair in list(self._pairs):
                for w in pair.writers():
                    _rst(w)
            self._pairs.clear()

        self._call(apply())

    def sent_lines(self) -> list[bytes]:
        """The client-to-server wire so far, one command line per item."""

        async def lines() -> list[bytes]:
            return bytes(self.sent).split(b"\r\n")

        return list(self._call(lines()))

    def open_count(self) -> int:
        async def count() -> int:
            return len(self._pairs)

        return int(self._call(count()))

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for pair in list(self._pairs):
                for w in pair.writers():
                    _rst(w)
            self._pairs.clear()
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- the forwarder ---------------------------------------------------------------
    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(cwriter)
            return
        pair = _Pair(cwriter, swriter)
        pair.dead = self.mode == "blackhole"
        self._pairs.add(pair)
        try:
            await asyncio.gather(
                self._pump(creader, swriter, pair, up=True),
                self._pump(sreader, cwriter, pair, up=False),
            )
        finally:
            self._pairs.discard(pair)
            for w in pair.writers():
                _rst(w)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair, up: bool
    ) -> None:
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            if not data:
                if not pair.dead or up:
                    # Either end closed a live pair; or the client gave up on a black-holed
                    # one: then it holds the connection no more, so it is not counted as
                    # open (the server end is closed too, rather than leaked).
                    self._pairs.discard(pair)
                    for w in pair.writers():
                        _rst(w)
                    return
                await asyncio.sleep(3600)  # a black hole reports nothing, ever
            now = asyncio.get_running_loop().time()
            if self.nat_timeout and now - pair.last >= self.nat_timeout:
                if self.nat_reset:  # a NAT that answers for a forgotten mapping with RST
                    self._pairs.discard(pair)
                    for w in pair.writers():
                        _rst(w)
                    return
                pair.dead = True  # the mapping expired while idle
            pair.last = now
            if pair.dead or self.mode == "blackhole":
                pair.dead = True
                continue  # swallowed
            if self.mode == "slow" and self.delay:
                await asyncio.sleep(self.delay)
            if not up and self.strip:
                for word in (self.strip,) if isinstance(self.strip, bytes) else self.strip:
                    data = data.replace(word, b"")
            if up and self.rewrite_up is not None:
                data = data.replace(*self.rewrite_up)
            if up:
                self.sent += data
            with contextlib.suppress(OSError):
                writer.write(data)
                await writer.drain()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER on, timeout 0."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    writer.close()
