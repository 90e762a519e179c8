"""Issue 15 item 2: a client that pipelines commands and never reads the replies
makes the server hold at most ``max_output`` of unsent replies (plus the reply of the
command that crossed it), before and after login, with COMPRESS and with TLS.

Through real sockets; the client's receive buffer is tiny so the kernel takes little.
What the server holds is read from its transports (deterministic, unlike RSS)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imap_harness import PASSWORD, LiveServer, live_server
from sec_harness import buffered_input, on_loop, unsent_output

from pushmail.imap.structure import build_cache
from pushmail.net.imap_conn import ImapConnection
from pushmail.store.interfaces import NewMessage, Store
from pushmail.transport.tls import ensure_certificate, server_context
from pushmail.transport.tls_layer import TlsLayer

MAX_OUTPUT = 256 * 1024
BODY = 100_000  # bytes of the one message; each FETCH replies with all of it
COMMANDS = 200  # 20 MB of replies in all


def _big_message(srv: LiveServer) -> None:
    uid = srv.user.id
    # Random text: COMPRESS cannot shrink it to nothing.
    text = os.urandom(BODY // 2).hex().encode()
    raw = b"Subject: big\r\n\r\n" + b"\r\n".join(text[i : i + 76] for i in range(0, BODY, 76))

    def run(st: Store) -> None:
        box = st.get_mailbox(uid, "INBOX")
        assert box is not None
        st.append(box.id, NewMessage(raw, build_cache(raw), frozenset()))

    srv.store_call(run)


def _fetches() -> bytes:
    return b"".join(b"f%d FETCH 1 BODY[]\r\n" % i for i in range(COMMANDS))


def _client(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: tiny window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        data = sock.recv(65536)
        assert data, got
        got += data
    return got


def _send_without_reading(sock: socket.socket, data: bytes) -> int:
    """Send as much as the server takes within a second; it may stop reading."""
    sock.settimeout(1.0)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 65536])
    except TimeoutError:
        pass
    return sent


def _held(srv: LiveServer) -> int:
    """Unsent output once it has not changed for a second (the server is done, or
    waits for the client to read; the kernel's buffers fill first)."""
    last, same = -1, 0
    for _ in range(600):
        time.sleep(0.1)
        now = max(unsent_output(srv), default=0)
        # Zero is never the end: the kernel's buffers take the first replies, and
        # a loaded machine may leave the server's loop unscheduled for a while.
        same = same + 1 if now == last and now > 0 else 0
        if same >= 10:
            break
        last = now
    return last


def _assert_bounded(srv: LiveServer, label: str) -> None:
    held = _held(srv)
    print(f"{label}: {held} bytes of unsent output held")
    assert held <= MAX_OUTPUT + 2 * BODY, held  # not the 20 MB the commands asked for
    assert max(buffered_input(srv), default=0) <= 256 * 1024


def test_logged_in_fetch_loop(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        _big_message(srv)
        with _client(srv.port) as sock:
            _read_until(sock, b"\r\n")
            sock.sendall(f"l LOGIN alice@example.org {PASSWORD}\r\ns SELECT INBOX\r\n".encode())
            _read_until(sock, b"s OK")
            _send_without_reading(sock, _fetches())
            _assert_bounded(srv, "plain")
            # Reading lets it go on: every reply arrives.
            sock.settimeout(30)
            assert b"f%d OK" % (COMMANDS - 1) in _drain(sock, b"f%d OK" % (COMMANDS - 1))


def _drain(sock: socket.socket, marker: bytes) -> bytes:
    tail = b""
    while marker not in tail:
        data = sock.recv(1 << 20)
        assert data
        tail = (tail + data)[-4096:]
    return tail


def test_capability_loop_before_login(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, _client(srv.port) as sock:
        _read_until(sock, b"\r\n")
        _send_without_reading(sock, b"c CAPABILITY\r\n" * 60_000)  # ~20 MB of replies
        held = _held(srv)
        print(f"before login: {held} bytes of unsent output held")
        assert 0 < held <= MAX_OUTPUT + 4096
        assert max(buffered_input(srv), default=0) <= 256 * 1024


def test_fetch_loop_with_compress(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        _big_message(srv)
        with _client(srv.port) as sock:
            _read_until(sock, b"\r\n")
            sock.sendall(f"l LOGIN alice@example.org {PASSWORD}\r\nz COMPRESS DEFLATE\r\n".encode())
            _read_until(sock, b"z OK")
            deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            cmds = b"s SELECT INBOX\r\n" + _fetches()
            _send_without_reading(sock, deflate.compress(cmds) + deflate.flush(zlib.Z_SYNC_FLUSH))
            _assert_bounded(srv, "compress")


def test_fetch_loop_over_tls(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        _big_message(srv)
        cert, key = ensure_certificate(tmp_path / "tls", "localhost")
        tls = server_context(cert, key)
        ctx = srv.ctx

        async def listen() -> int:
            server = await srv.loop.create_server(
                lambda: TlsLayer(ImapConnection(ctx, secure=True), tls), "127.0.0.1", 0
            )
            srv.extra_server = server  # type: ignore[attr-defined]
            return int(server.sockets[0].getsockname()[1])

        port = srv._call(listen())
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        with client_ctx.wrap_socket(_client(port)) as sock:
            _read_until(sock, b"\r\n")
            sock.sendall(f"l LOGIN alice@example.org {PASSWORD}\r\ns SELECT INBOX\r\n".encode())
            _read_until(sock, b"s OK")
            sock.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                sock.sendall(_fetches())
            _assert_bounded(srv, "tls")
        on_loop(srv, srv.extra_server.close)  # type: ignore[attr-defined]
