"""The lean TLS layer (transport/tls_layer.py) as a TLS client meets it: handshake, data
both ways, and an orderly close_notify that ends the connection (a clean close must
not leave the server reading forever)."""

from __future__ import annotations

import select
import socket
import ssl

from e2e_server import Server
from test_push_e2e import read_until


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_close_notify_closes_and_server_stays_responsive(server: Server) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.imaps), timeout=10) as raw:
            sock = _tls().wrap_socket(raw)
            read_until(sock, rb"\* OK")
            sock.sendall(b"a NOOP\r\n")
            read_until(sock, b"a OK")
            plain = sock.unwrap()  # sends close_notify, waits for the server's
            r, _, _ = select.select([plain], [], [], 10)
            assert r, "server did not close after close_notify"
            assert plain.recv(100) == b""
            plain.close()
    # The server still answers promptly afterwards (no busy loop in the layer).
    with (
        socket.create_connection(("127.0.0.1", server.imaps), timeout=10) as raw,
        _tls().wrap_socket(raw) as sock,
    ):
        read_until(sock, rb"\* OK")
        sock.sendall(b"b CAPABILITY\r\n")
        out = read_until(sock, b"b OK")
        assert b"IMAP4rev1" in out and b"STARTTLS" not in out


def test_tls_handshake_garbage_is_refused(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.imaps), timeout=10) as raw:
        raw.sendall(b"this is not a TLS client hello\r\n" * 10)
        r, _, _ = select.select([raw], [], [], 10)
        assert r
        data = raw.recv(4096)
        assert not data.startswith(b"* OK")
