"""Issue 15 item 1: one command cannot make the server hold more than its cap,
however many literals it chains; before login the cap is a few KB.

Through a real socket; what the server holds is read from its fragmentizer
(deterministic, unlike RSS)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_harness import LineClient, LiveServer, live_server
from sec_harness import buffered_input

from pushmail.config import Limits

CHUNK = 4000
PIECES = 40  # 160 KB in one command, every literal far under any literal cap


def _settle(srv: LiveServer, client: LineClient, tag: str) -> list[int]:
    """What the server holds once it has read everything sent so far (a NOOP-like
    round trip is impossible mid-command, so wait for the socket to drain)."""
    deadline = time.monotonic() + 10
    held = buffered_input(srv)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        again = buffered_input(srv)
        if again == held:
            return held
        held = again
    return held


def test_chained_literals_before_login_are_dropped(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as c1:
        c1.send(b"a LOGIN x")
        for _ in range(PIECES):
            c1.send(b" {%d+}\r\n" % CHUNK + b"x" * CHUNK)
        reply = c1.line()
        assert reply.startswith(b"a BAD [TOOBIG]"), reply
        held = _settle(srv, c1, "a")
        print("held before login:", held)
        assert max(held) < 16 * 1024  # not the 160 KB the command carried
        c1.send(b"\r\n")  # the end of the dropped command
        assert c1.command("b", "CAPABILITY")[-1].startswith(b"b OK")


def test_synchronizing_literal_over_the_prelogin_cap_gets_no_continuation(
    tmp_path: Path,
) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as c1:
        c1.send(b"a LOGIN {20000}\r\n")
        reply = c1.line()
        assert reply.startswith(b"a BAD [TOOBIG]"), reply
        c1.login()  # a real login still fits


def test_after_login_commands_are_capped_but_append_carries_a_message(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as c1:
        srv.ctx.limits = Limits(auth_failure_delay=0.01, max_command=64 * 1024)
        c1.login()
        c1.send(b"s SEARCH")
        for _ in range(PIECES):
            c1.send(b" TEXT {%d+}\r\n" % CHUNK + b"y" * CHUNK)
        reply = c1.line()
        assert reply.startswith(b"s BAD [TOOBIG]"), reply
        held = _settle(srv, c1, "s")
        assert max(held) < 80 * 1024
        c1.send(b"\r\n")
        body = b"Subject: big\r\n\r\n" + b"z" * 200_000 + b"\r\n"
        c1.send(b"p APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
        assert c1.until("p")[-1].startswith(b"p OK")
