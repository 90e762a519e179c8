"""Commands sent without waiting for replies: every one is answered, in order,
whether the client sends a few or far more than the server buffers while a command
runs (reading then pauses), and whether or not it half-closes right after."""

from __future__ import annotations

import socket

from e2e_server import Server
from test_push_e2e import read_until


def _login(sock: socket.socket) -> None:
    read_until(sock, rb"\* OK")
    sock.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\n")
    read_until(sock, b"b OK")


def _answers(sock: socket.socket, last: bytes) -> bytes:
    got = b""
    while last not in got:
        chunk = sock.recv(1 << 20)
        assert chunk, got[-200:]
        got += chunk
    return got


def test_a_flood_of_pipelined_commands_is_answered_in_order(server: Server) -> None:
    count = 30_000  # ~450 KB of commands: well past what is buffered before pausing
    with socket.create_connection(("127.0.0.1", server.imap), timeout=30) as sock:
        _login(sock)
        sock.sendall(b"".join(b"t%d NOOP\r\n" % i for i in range(count)))
        got = _answers(sock, b"t%d OK" % (count - 1))
        tags = [line.split(b" ", 1)[0] for line in got.split(b"\r\n") if line.startswith(b"t")]
        assert tags == [b"t%d" % i for i in range(count)]


def test_commands_then_half_close_are_all_answered(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.imap), timeout=30) as sock:
        _login(sock)
        sock.sendall(b"c NOOP\r\nd STATUS INBOX (MESSAGES)\r\ne LOGOUT\r\n")
        sock.shutdown(socket.SHUT_WR)
        got = _answers(sock, b"e OK")
        assert got.index(b"c OK") < got.index(b"* STATUS") < got.index(b"d OK")
        assert b"* BYE" in got
        assert sock.recv(100) == b""  # and then the server closes
