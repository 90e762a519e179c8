"""Hibernation of idle sessions (net/hibernate.py), seen from a client: a hibernated
session hears new mail, flag changes and expunges exactly as an awake one would, over
plain TCP and over TLS, gets keepalives, and resumes cleanly on DONE."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port
from test_push_e2e import lmtp_deliver, login, message, read_until


@pytest.fixture
def hib_server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.data_dir.mkdir()
    cfg = tmp_path / "pushmail.toml"
    cfg.write_text("[imap_settings]\nidle_keepalive = 3.0\n")
    srv.extra = ("--config", str(cfg))
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _stat(srv: Server, key: str) -> int:
    path = srv.data_dir / "stats" / "worker-0.json"
    try:
        return int(json.loads(path.read_text())[key])
    except (OSError, ValueError, KeyError):
        return -1


def _hibernated(srv: Server) -> int:
    return _stat(srv, "hibernated")


def _wait_hibernated(srv: Server, n: int) -> None:
    deadline = time.monotonic() + 20
    while _hibernated(srv) != n:
        assert time.monotonic() < deadline, f"expected {n} hibernated, have {_hibernated(srv)}"
        time.sleep(0.2)


def _idle(sock: socket.socket) -> None:
    read_until(sock, rb"\* OK")
    sock.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\n")
    read_until(sock, b"b OK")
    sock.sendall(b"c IDLE\r\n")
    read_until(sock, rb"\+ idling")


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_hibernated_session_hears_all_kinds_of_change(hib_server: Server) -> None:
    srv = hib_server
    for i in range(3):
        lmtp_deliver(srv, message(f"before {i}"))
    with socket.create_connection(("127.0.0.1", srv.imap), timeout=10) as sock:
        _idle(sock)
        _wait_hibernated(srv, 1)
        lmtp_deliver(srv, message("while asleep"))
        got = read_until(sock, rb"\* 4 EXISTS\r\n\* \d+ RECENT\r\n")
        # It selected first (claiming the three older ones) and hears of the new one
        # first: all four are \Recent for it.
        assert b"* 4 RECENT" in got
        other = login(srv)
        other.select("INBOX")
        other.store("2", "+FLAGS", "(\\Flagged)")
        read_until(sock, rb"\* 2 FETCH \(FLAGS \(\\Flagged")
        other.store("1", "+FLAGS", "(\\Deleted)")
        other.expunge()
        other.logout()
        read_until(sock, rb"\* 1 EXPUNGE\r\n")
        sock.sendall(b"DONE\r\n")
        read_until(sock, b"c OK")
        sock.sendall(b"d FETCH 1:* (UID FLAGS)\r\n")
        out = read_until(sock, b"d OK")
        uids = [int(u) for u in re.findall(rb"UID (\d+)", out)]
        assert uids == [2, 3, 4]
        assert re.search(rb"\* 3 FETCH \(UID 4 FLAGS \(\\Recent\)\)", out), out


def test_hibernated_session_gets_keepalive(hib_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", hib_server.imap), timeout=10) as sock:
        _idle(sock)
        _wait_hibernated(hib_server, 1)
        read_until(sock, rb"\* OK Still here\r\n", timeout=20)
        sock.sendall(b"DONE\r\n")
        read_until(sock, b"c OK")


def test_client_that_leaves_while_hibernated_is_closed_without_resuming(
    hib_server: Server,
) -> None:
    """A closed socket is dropped asleep (no session rebuilt to read EOF), but a
    client that half-closes after DONE and LOGOUT still gets its answers."""
    srv = hib_server
    for how in ("reset", "fin"):
        with socket.create_connection(("127.0.0.1", srv.imap), timeout=10) as sock:
            _idle(sock)
            _wait_hibernated(srv, 1)
            if how == "reset":  # SO_LINGER 0: close sends RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        _wait_hibernated(srv, 0)
    deadline = time.monotonic() + 20
    while _stat(srv, "hibernated_closed_by_peer") != 2:
        assert time.monotonic() < deadline, _stat(srv, "hibernated_closed_by_peer")
        time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", srv.imap), timeout=10) as sock:
        _idle(sock)
        _wait_hibernated(srv, 1)
        sock.sendall(b"DONE\r\nz LOGOUT\r\n")
        sock.shutdown(socket.SHUT_WR)
        got = read_until(sock, b"z OK")
        assert b"c OK" in got and b"* BYE" in got
    assert _stat(srv, "hibernated_closed_by_peer") == 2


def test_tls_session_hibernates_and_resumes(hib_server: Server) -> None:
    srv = hib_server
    with (
        socket.create_connection(("127.0.0.1", srv.imaps), timeout=10) as raw,
        _tls().wrap_socket(raw) as sock,
    ):
        _idle(sock)
        _wait_hibernated(srv, 1)
        lmtp_deliver(srv, message("encrypted push"))
        read_until(sock, rb"\* 1 EXISTS\r\n")
        read_until(sock, rb"\* OK Still here\r\n", timeout=20)
        sock.sendall(b"DONE\r\n")
        read_until(sock, b"c OK")
        sock.sendall(b"d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
        assert b"encrypted push" in read_until(sock, b"d OK")
        sock.sendall(b"e LOGOUT\r\n")
        read_until(sock, b"e OK")


def test_starttls_session_hibernates(hib_server: Server) -> None:
    srv = hib_server
    with socket.create_connection(("127.0.0.1", srv.imap), timeout=10) as raw:
        read_until(raw, rb"\* OK")
        raw.sendall(b"s STARTTLS\r\n")
        read_until(raw, b"s OK")
        with _tls().wrap_socket(raw) as sock:
            sock.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\n")
            read_until(sock, b"b OK")
            sock.sendall(b"c IDLE\r\n")
            read_until(sock, rb"\+ idling")
            _wait_hibernated(srv, 1)
            lmtp_deliver(srv, message("after starttls"))
            read_until(sock, rb"\* 1 EXISTS\r\n")
            sock.sendall(b"DONE\r\n")
            read_until(sock, b"c OK")


def test_every_hibernated_session_gets_its_keepalives(hib_server: Server) -> None:
    """Keepalives for sleeping sessions come from the housekeeping wheel, which looks
    only at records that are due: each of many sessions still gets one per interval
    (3 s here), and they keep coming after the first."""
    srv = hib_server
    socks = [socket.create_connection(("127.0.0.1", srv.imap), timeout=10) for _ in range(12)]
    try:
        for sock in socks:
            _idle(sock)
        _wait_hibernated(srv, len(socks))
        for sock in socks:
            read_until(sock, rb"(\* OK Still here\r\n.*){2}", timeout=20)
        assert _hibernated(srv) == len(socks)
    finally:
        for sock in socks:
            sock.close()


def test_hibernated_session_hears_new_keywords_first(hib_server: Server) -> None:
    """Issue 14 item 2: a keyword new to the mailbox reaches a hibernated session as
    FLAGS and PERMANENTFLAGS before the EXISTS of the message that brought it (told
    without waking) and before the FETCH of a message that was given it (woken)."""
    srv = hib_server
    lmtp_deliver(srv, message("before"))
    with socket.create_connection(("127.0.0.1", srv.imap), timeout=10) as sock:
        _idle(sock)
        _wait_hibernated(srv, 1)
        other = login(srv)
        other.append("INBOX", "($Label1)", None, message("tagged"))
        got = _quiet(read_until(sock, rb"\* 2 EXISTS\r\n\* \d+ RECENT\r\n"))
        assert got.startswith(
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n"
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)]"
        ), got
        _wait_hibernated(srv, 1)  # told without waking: still asleep
        other.select("INBOX")
        other.store("1", "+FLAGS", "($Label2)")
        other.logout()
        got = _quiet(read_until(sock, rb"\* 1 FETCH \(FLAGS \([^)]*\)\)\r\n"))
        assert got.startswith(
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $Label2)\r\n"
        ), got
        assert b"$Label2" in got.split(b"\r\n")[2], got
        sock.sendall(b"DONE\r\nd FETCH 1:* FLAGS\r\n")
        out = read_until(sock, b"d OK")
        assert b"* FLAGS" not in out, out  # announced once, not again


def _quiet(data: bytes) -> bytes:
    """Without the keepalives (every 3 s here), which may come at any point."""
    return data.replace(b"* OK Still here\r\n", b"")
