"""The NATS server the cluster tests use, and a TCP proxy that can cut them off it.

Tests that need NATS skip with a reason when it is not reachable on a developer's
machine, and fail in CI (``CI=true``), where it must run (issue 17)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket

import pytest

NATS_HOST = os.environ.get("PUSHMAIL_TEST_NATS_HOST", "127.0.0.1")
NATS_PORT = int(os.environ.get("PUSHMAIL_TEST_NATS_PORT", "4222"))


def nats_url() -> str:
    """The server's URL, after checking that it answers like NATS (an INFO line)."""
    reason = None
    try:
        with socket.create_connection((NATS_HOST, NATS_PORT), timeout=2) as sock:
            if not sock.recv(4096).startswith(b"INFO "):
                reason = f"{NATS_HOST}:{NATS_PORT} is not a NATS server"
    except OSError as exc:
        reason = f"no NATS server on {NATS_HOST}:{NATS_PORT}: {exc}"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs NATS: {reason}")
        pytest.skip(reason)
    return f"nats://{NATS_HOST}:{NATS_PORT}"


def random_prefix() -> str:
    """A subject prefix of one test's own, so tests sharing the server never meet."""
    return f"test{secrets.token_hex(6)}"


class TcpProxy:
    """Forwards a loopback port to the NATS server; ``cut`` closes every connection
    through it and refuses new ones until ``restore`` (the server itself is shared
    and cannot be restarted by one test)."""

    def __init__(self, host: str = NATS_HOST, port: int = NATS_PORT) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.close()
            self._writers.discard(dst)

    async def cut(self) -> None:
        """Drop every connection and stop listening: reconnect attempts meanwhile
        are refused."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()
