"""Timers and bad input over real sockets: keepalive while idling, autologout of the
inactive, oversized lines and literals, bad commands and failed logins. No peer input
may leave a traceback in the server log."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port
from test_push_e2e import read_until

CONFIG = """
[imap_settings]
idle_keepalive = 0.5
autologout = 3.0

[limits]
max_literal = 1024
max_bad_commands = 10
max_auth_failures = 3
auth_failure_delay = 0.05
"""


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[Server]:
    """A server with second-scale timers and a 1 KiB literal cap."""
    config = tmp_path / "pushmail.toml"
    config.write_text(CONFIG)
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.extra = ("--config", str(config))
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    log = (srv.data_dir / "server.log").read_text()
    assert "Traceback" not in log and "internal error" not in log, log


def connect(server: Server, login: bool = True) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.imap), timeout=10)
    read_until(sock, rb"\* OK.*\r\n")
    if login:
        sock.sendall(b"l LOGIN alice@example.org alice-secret\r\n")
        read_until(sock, rb"l OK.*\r\n")
    return sock


def read_to_eof(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything until the server closes the connection."""
    sock.settimeout(timeout)
    buf = b""
    while chunk := sock.recv(65536):
        buf += chunk
    return buf


def test_idling_client_hears_still_here_then_autologout(tight: Server) -> None:
    with connect(tight) as sock:
        sock.sendall(b"s SELECT INBOX\r\ni IDLE\r\n")
        read_until(sock, rb"\+ idling\r\n")
        got = read_until(sock, rb"(\* OK Still here\r\n.*){2}")
        assert b"BYE" not in got
        rest = read_to_eof(sock)
        assert b"* BYE autologout" in rest


def test_inactive_client_is_logged_out(tight: Server) -> None:
    with connect(tight) as sock, connect(tight, login=False) as anon:
        sock.sendall(b"s SELECT INBOX\r\n")
        read_until(sock, rb"s OK.*\r\n")
        out = read_to_eof(sock)
        assert b"Still here" not in out  # keepalives are for idlers only
        assert out.endswith(b"* BYE autologout; idle for too long\r\n")
        assert b"* BYE autologout" in read_to_eof(anon)


def test_activity_postpones_autologout(tight: Server) -> None:
    with connect(tight) as sock:
        deadline = time.monotonic() + 4.5  # longer than autologout
        n = 0
        while time.monotonic() < deadline:
            n += 1
            sock.sendall(b"n%d NOOP\r\n" % n)
            assert b"BYE" not in read_until(sock, rb"n%d OK.*\r\n" % n)
            time.sleep(0.5)
        sock.sendall(b"z LOGOUT\r\n")
        assert b"z OK" in read_to_eof(sock)


def test_long_line_and_big_literal_are_refused_and_session_survives(tight: Server) -> None:
    with connect(tight) as sock:
        sock.sendall(b"a NOOP " + b"x" * 70_000 + b"\r\n")
        assert b"a BAD [TOOBIG]" in read_until(sock, rb"a BAD.*\r\n")
        sock.sendall(b"b APPEND INBOX {2048}\r\n")
        out = read_until(sock, rb"b (BAD|NO).*\r\n")
        assert b"[TOOBIG]" in out and b"+ " not in out  # never asked for the data
        sock.sendall(b"c APPEND INBOX {2048+}\r\n" + b"y" * 2048 + b"\r\n")
        assert b"[TOOBIG]" in read_until(sock, rb"c (BAD|NO).*\r\n")
        sock.sendall(b"d APPEND INBOX {5}\r\n")
        read_until(sock, rb"\+ .*\r\n")
        sock.sendall(b"hello\r\n")
        assert b"d OK" in read_until(sock, rb"d (OK|NO|BAD).*\r\n")
        sock.sendall(b"e NOOP\r\n")
        read_until(sock, rb"e OK.*\r\n")


@pytest.mark.parametrize(
    "line",
    [
        b"a FOO",
        b"a FETCH x y",
        b"a SELECT",
        b"a UID",
        b"a LOGIN {999999999999999999999}",
        b"\x00\xff\xfe garbage",
        b'a LIST "" "\xff"',
        b"a SEARCH CHARSET UTF-8 SUBJECT \xff\xfe",
        b"a AUTHENTICATE PLAIN ====",
        b"a STORE 1:* FLAGS (\\Bogus",
        b"* NOOP",
        b"a " + b"(" * 5000,
    ],
)
def test_malformed_commands_get_bad_with_a_reason(tight: Server, line: bytes) -> None:
    with connect(tight, login=False) as sock:
        sock.sendall(line + b"\r\n")
        out = read_until(sock, rb"(BAD|NO|\+).*\r\n")
        assert b" BAD " in out or b" NO " in out or out.startswith(b"+"), out
        sock.sendall(b"*\r\nz NOOP\r\n")  # "*" ends a SASL exchange if one began
        assert b"z OK" in read_until(sock, rb"z OK.*\r\n")


def test_ten_bad_commands_disconnect(tight: Server) -> None:
    with connect(tight) as sock:
        sock.sendall(b"".join(b"b%d BOGUS\r\n" % i for i in range(9)))
        out = read_until(sock, rb"b8 BAD.*\r\n")
        assert out.count(b" BAD ") == 9
        sock.sendall(b"ok NOOP\r\n")  # a good command resets the count
        read_until(sock, rb"ok OK.*\r\n")
        sock.sendall(b"".join(b"c%d BOGUS\r\n" % i for i in range(12)))
        out = read_to_eof(sock)
        assert out.count(b" BAD ") == 10 and out.endswith(b"* BYE too many bad commands\r\n")


def test_failed_logins_slow_down_then_disconnect(tight: Server) -> None:
    with connect(tight, login=False) as sock:
        for i in range(2):
            sock.sendall(b"f%d LOGIN alice@example.org wrong\r\n" % i)
            assert b"NO [AUTHENTICATIONFAILED]" in read_until(sock, rb"f%d NO.*\r\n" % i)
        sock.sendall(b"f2 LOGIN alice@example.org wrong\r\n")
        out = read_to_eof(sock)
        assert b"f2 NO [AUTHENTICATIONFAILED]" in out
        assert out.endswith(b"* BYE too many failed logins\r\n")
    with connect(tight) as sock:  # the right password still works afterwards
        sock.sendall(b"x LOGOUT\r\n")
        assert b"x OK" in read_to_eof(sock)


def test_garbage_on_the_tls_port_is_harmless(tight: Server) -> None:
    for payload in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.0\r\n\r\n", b"\x00" * 1000):
        with socket.create_connection(("127.0.0.1", tight.imaps), timeout=10) as sock:
            sock.sendall(payload)
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", tight.imaps), timeout=10) as raw,
        ctx.wrap_socket(raw) as sock,
    ):
        assert b"* OK" in read_until(sock, rb"\* OK.*\r\n")
