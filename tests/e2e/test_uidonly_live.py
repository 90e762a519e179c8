"""UIDONLY (RFC 9586) through a real socket: a client idling in UIDONLY mode hears
another session's flag change as UIDFETCH, its expunge as VANISHED (no QRESYNC) and
new mail as EXISTS, both awake and hibernated (a hibernated session wakes with the
same UIDONLY semantics, net/hibernated.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port
from test_hibernate import _wait_hibernated
from test_push_e2e import lmtp_deliver, login, message, read_until


@pytest.fixture(params=[True, False], ids=["hibernated", "awake"])
def srv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, bool]]:
    hibernate: bool = request.param
    server = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    server.data_dir.mkdir()
    cfg = tmp_path / "pushmail.toml"
    cfg.write_text(f"[imap_settings]\nhibernate = {str(hibernate).lower()}\n")
    server.extra = ("--config", str(cfg))
    server.add_user("alice@example.org", "alice-secret")
    server.start()
    try:
        yield server, hibernate
    finally:
        server.stop()


def test_uidonly_idle_hears_uidfetch_vanished_exists(srv: tuple[Server, bool]) -> None:
    server, hibernate = srv
    for i in range(3):
        lmtp_deliver(server, message(f"before {i}"))
    with socket.create_connection(("127.0.0.1", server.imap), timeout=10) as sock:
        read_until(sock, rb"\* OK \[CAPABILITY [^\r]* UIDONLY")
        sock.sendall(b"a LOGIN alice@example.org alice-secret\r\na ENABLE UIDONLY\r\n")
        assert b"* ENABLED UIDONLY\r\n" in read_until(sock, b"a OK ENABLE")
        sock.sendall(b"b SELECT INBOX\r\n")
        got = read_until(sock, b"b OK")
        assert b"* 3 EXISTS\r\n" in got and b"UNSEEN" not in got  # UNSEEN is a number
        sock.sendall(b"c FETCH 1 FLAGS\r\n")
        read_until(sock, rb"c BAD \[UIDREQUIRED\]")
        sock.sendall(b"d UID FETCH 2:* (FLAGS)\r\n")
        got = read_until(sock, b"d OK")
        assert b"* 2 UIDFETCH (FLAGS (\\Recent))\r\n* 3 UIDFETCH (FLAGS (\\Recent))\r\n" in got
        sock.sendall(b"e IDLE\r\n")
        read_until(sock, rb"\+ idling")
        if hibernate:
            _wait_hibernated(server, 1)
        lmtp_deliver(server, message("while idling"))
        read_until(sock, rb"\* 4 EXISTS\r\n\* \d+ RECENT\r\n")
        other = login(server)
        other.select("INBOX")
        other.store("2", "+FLAGS", "(\\Flagged)")
        read_until(sock, rb"\* 2 UIDFETCH \(FLAGS \(\\Flagged \\Recent\)\)\r\n")
        other.store("1", "+FLAGS", "(\\Deleted)")
        other.expunge()
        other.logout()
        got = read_until(sock, rb"\* VANISHED 1\r\n")
        assert b"EXPUNGE" not in got and b" FETCH" not in got
        sock.sendall(b"DONE\r\n")
        read_until(sock, b"e OK")
        sock.sendall(b"f UID FETCH 4 (FLAGS)\r\nz LOGOUT\r\n")
        got = read_until(sock, b"z OK")
        assert b"* 4 UIDFETCH (FLAGS (\\Recent))\r\n" in got
