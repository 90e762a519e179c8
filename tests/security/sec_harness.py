"""What the security tests share: reading the live server's state on its loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LiveServer

from pushmail.net.imap_conn import ImapConnection

T = TypeVar("T")


def on_loop(srv: LiveServer, fn: Callable[[], T]) -> T:
    """``fn()`` run on the server's event loop, between its callbacks."""

    async def run() -> T:
        return fn()

    return srv._call(run())


def buffered_input(srv: LiveServer) -> list[int]:
    """Bytes each connection's fragmentizer holds."""
    return on_loop(srv, lambda: [c.buffered for c in srv.ctx.connections])


def unsent_output(srv: LiveServer) -> list[int]:
    """Bytes each connection has written that the socket has not taken."""

    def sizes() -> list[int]:
        out = []
        for conn in srv.ctx.connections:
            t = conn.transport
            out.append(t.get_write_buffer_size() if t is not None else 0)
        return out

    return on_loop(srv, sizes)


def connections(srv: LiveServer) -> list[ImapConnection]:
    return on_loop(srv, lambda: list(srv.ctx.connections))
