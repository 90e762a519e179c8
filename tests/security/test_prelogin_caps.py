"""Issue 15 item 3, in process: connections that have not logged in are capped per
client address, and they must log in within ``prelogin_timeout`` of connecting,
whatever they trickle meanwhile."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_harness import LineClient, LiveServer, live_server
from sec_harness import on_loop

from pushmail.config import Config, ImapSettings, Limits
from pushmail.server.serve import Housekeeper
from pushmail.transport.conncap import ConnectionGate


def _gate(srv: LiveServer, per_address: int, timeout: float) -> ConnectionGate:
    ctx = srv.ctx
    gate = ConnectionGate(1000, per_address, timeout, lambda: len(ctx.connections))
    ctx.gate = gate
    return gate


def test_prelogin_connections_per_address_are_capped(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        gate = _gate(srv, per_address=3, timeout=0)
        first = [LineClient(srv.port) for _ in range(3)]
        assert all(c.greeting.startswith(b"* OK") for c in first)
        with LineClient(srv.port) as fourth:
            assert fourth.greeting == b"* BYE too many connections from your address"
        first[0].login()  # a logged-in connection no longer counts
        with LineClient(srv.port) as fifth:
            assert fifth.greeting.startswith(b"* OK")
            assert on_loop(srv, lambda: gate.prelogin_count("127.0.0.1")) == 3
        for c in first:
            c.sock.close()
        # Closed connections leave the count (nothing is held for them).
        deadline = time.monotonic() + 10
        while on_loop(srv, gate.prelogin_count) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert on_loop(srv, gate.prelogin_count) == 0


def test_prelogin_deadline_is_not_reset_by_trickled_bytes(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        _gate(srv, per_address=0, timeout=0.5)
        config = Config(limits=Limits(), imap_settings=ImapSettings())
        keeper = Housekeeper(srv.ctx, config)
        with LineClient(srv.port) as slow, LineClient(srv.port) as user:
            user.login()
            for _ in range(8):  # a byte every 0.1 s: never idle for long
                slow.send(b"a")
                time.sleep(0.1)
            on_loop(srv, keeper.sweep)
            assert slow.line() == b"* BYE no login in time"
            assert slow.sock.recv(100) == b""
            assert user.command("n", "NOOP")[-1].startswith(b"n OK")  # logged in: kept
