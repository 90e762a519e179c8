"""Issue 15 item 3 through a real server process with a low descriptor limit:
connections are capped below it (IMAP and SMTP), one address cannot hold more than
its share of pre-login connections, a real login still gets in, and when descriptors
do run out the condition is logged once per interval, not once per ``accept()``."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fd_server import FdServer, connect_from, first_line, login_seconds

NOFILE = 256  # the server's RLIMIT_NOFILE; its derived cap is 256 - 64 = 192


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def _is_open(sock: socket.socket) -> bool:
    """Whether the server has not closed this connection (what it sent is read)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
            if not data:
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def _open(port: int, sources: list[str], each: int, held: list[socket.socket]) -> list[bytes]:
    greetings = []
    for source in sources:
        for _ in range(each):
            s = connect_from(source, port)
            held.append(s)
            greetings.append(first_line(s))
    return greetings


def test_connections_are_capped_below_the_descriptor_limit(
    tmp_path: Path, held: list[socket.socket]
) -> None:
    srv = FdServer(tmp_path, NOFILE, "[limits]\nmax_prelogin_per_address = 60\n")
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        # One address: its pre-login share, then BYE; a user elsewhere still logs in.
        one = _open(srv.imap, ["127.0.0.2"], 80, held)
        assert sum(g.startswith(b"* OK") for g in one) == 60
        assert sum(g == b"* BYE too many connections from your address" for g in one) == 20
        took = login_seconds(srv.imap, "alice-secret")
        print(f"login beside one address's 80 connections: {took:.3f} s")
        # Many addresses, 280 connections in all: never more than the worker's cap
        # (192, below its 256 descriptors) open; the oldest that have not logged in
        # make room for new ones, so a real user still gets in.
        many = _open(srv.imap, [f"127.0.0.{i}" for i in range(3, 7)], 55, held)
        assert all(g.startswith(b"* OK") for g in many)
        took = login_seconds(srv.imap, "alice-secret")
        print(f"login beside 280 connections from 5 addresses: {took:.3f} s")
        time.sleep(0.5)
        still_open = sum(_is_open(s) for s in held)
        print(f"connections still open: {still_open}")
        assert still_open <= 192
        _open(srv.imap, ["127.0.0.8"], 1, held)  # the cap is reached again
        smtp = connect_from("127.0.0.7", srv.smtp)  # SMTP shares the cap
        held.append(smtp)
        assert first_line(smtp).startswith(b"421 4.3.2")
        log = srv.log_text()
        assert "out of system resource" not in log and "fd-exhausted" not in log
        assert "prelogin-evicted service=imap" in log
        assert "connection-limit service=mx" in log
        assert "prelogin-limit service=imap client=127.0.0.2" in log
        for s in held:
            s.close()
        held.clear()
        time.sleep(0.5)
        assert login_seconds(srv.imap, "alice-secret") >= 0  # serving again
    except BaseException:
        print(srv.log_text()[-5000:])
        raise
    finally:
        srv.stop()


def test_descriptor_exhaustion_is_logged_once_per_interval(
    tmp_path: Path, held: list[socket.socket]
) -> None:
    # A cap set above the descriptor limit: accept() itself fails with EMFILE.
    srv = FdServer(
        tmp_path, NOFILE, "[limits]\nmax_connections = 5000\nmax_prelogin_per_address = 0\n"
    )
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        for _ in range(400):  # the kernel completes these; the server cannot take them all
            held.append(connect_from("127.0.0.2", srv.imap))
        time.sleep(3)  # several of asyncio's one-second pauses between accept() attempts
        log = srv.log_text()
        lines = [line for line in log.splitlines() if "fd-exhausted" in line]
        print(lines)
        assert len(lines) == 1
        assert "out of system resource" not in log  # asyncio's own line per attempt
        for s in held:
            s.close()
        held.clear()
        time.sleep(1.5)  # the pause after the last failed accept()
        assert login_seconds(srv.imap, "alice-secret") >= 0  # accepting again
    except BaseException:
        print(srv.log_text()[-5000:])
        raise
    finally:
        srv.stop()


def test_prelogin_deadline_imap_and_submission(tmp_path: Path) -> None:
    srv = FdServer(tmp_path, 1024, "[limits]\nprelogin_timeout = 1.0\n")
    srv.start()
    try:
        imap = connect_from("127.0.0.2", srv.imap, timeout=30)
        sub = connect_from("127.0.0.2", srv.submission, timeout=30)
        assert first_line(imap).startswith(b"* OK")
        assert first_line(sub).startswith(b"220")
        t0 = time.monotonic()
        imap_end = sub_end = b""
        while (not imap_end or not sub_end) and time.monotonic() - t0 < 20:
            for sock, name in ((imap, "imap"), (sub, "sub")):
                try:
                    sock.sendall(b"x" if name == "imap" else b"NOOP\r\n")  # never quiet
                    sock.settimeout(0.2)
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b"closed"
                if name == "imap" and (b"BYE" in data or data in (b"", b"closed")):
                    imap_end = imap_end or data or b"closed"
                if name == "sub" and (b"421" in data or data in (b"", b"closed")):
                    sub_end = sub_end or data or b"closed"
            time.sleep(0.2)
        assert b"* BYE no login in time" in imap_end, imap_end
        assert b"421 4.4.2" in sub_end, sub_end
        log = srv.log_text()
        assert "prelogin-timeout service=imap client=127.0.0.2" in log
        assert "prelogin-timeout service=submission client=127.0.0.2" in log
        imap.close()
        sub.close()
    except BaseException:
        print(srv.log_text()[-5000:])
        raise
    finally:
        srv.stop()
