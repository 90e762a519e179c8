"""The scrape endpoint: ``GET /metrics`` over plain HTTP on its own listener.

Not on the alerts API's listener: that one faces users (and may face the internet),
this one is for a Prometheus server, on loopback by default. A scrape is small and
rare, so this is a minimal HTTP/1.1 server, one request per connection, with the
limits every listener here has: a few connections at once, a capped request head
read within a deadline, a deadline for writing the answer. The merge of all
workers' files runs on a thread, not on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CONTENT_TYPE_LATEST

from pushmail.config import Endpoint
from pushmail.metrics.exposition import render

log = logging.getLogger("pushmail.metrics")

MAX_HEAD = 8192  # bytes of a request line and headers
MAX_CLIENTS = 8  # connections at once; more are closed at once
HEAD_TIMEOUT = 5.0  # seconds to send the request head
WRITE_TIMEOUT = 10.0  # seconds for the client to take the answer


class Limited:
    """Connections at once, and the thread that builds answers, shared by the
    metrics and status listeners of a worker."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        self.clients = 0

    def serve(
        self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.clients >= MAX_CLIENTS:
                writer.close()
                return
            self.clients += 1
            try:
                await handle(reader, writer)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass  # the client went away, was too slow or sent too much
            finally:
                self.clients -= 1
                writer.close()

        return guarded

    async def build(self, fn: Callable[[], bytes]) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _answer(limited: Limited, reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return _response("400 Bad Request", b"bad request\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _response("405 Method Not Allowed", b"GET only\n")
    if target != b"/metrics":
        return _response("404 Not Found", b"metrics are at /metrics\n")
    body = await limited.build(render)
    answer = _response("200 OK", body, CONTENT_TYPE_LATEST)
    return answer[: answer.index(b"\r\n\r\n") + 4] if method == b"HEAD" else answer


async def start_listener(endpoint: Endpoint, limited: Limited) -> asyncio.Server | None:
    """Listen on ``endpoint``; None (logged) when that fails: mail must flow even if
    metrics cannot be served."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await _answer(limited, reader))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    try:
        server = await asyncio.start_server(
            limited.serve(handle), endpoint.host, endpoint.port, limit=MAX_HEAD
        )
    except OSError as e:
        log.error("metrics NOT available: cannot listen on %s: %s", endpoint, e)
        return None
    host, port = server.sockets[0].getsockname()[:2]
    log.info("metrics listening on %s", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return server


async def close_server(server: asyncio.Server | None) -> None:
    if server is not None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
