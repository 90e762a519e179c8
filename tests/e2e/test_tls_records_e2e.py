"""TLS sessions after they leave OpenSSL (transport/tls_records.py), driven by real clients:
``openssl s_client`` with each TLS 1.3 cipher suite, a KeyUpdate the client asks us
to answer, a session that hibernates in between, and TLS 1.2, which stays on OpenSSL.
The server's stats count which path each session took."""

from __future__ import annotations

import os
import select
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from e2e_server import Server
from test_hibernate import _stat, _wait_hibernated, hib_server  # noqa: F401
from test_push_e2e import lmtp_deliver, message, read_until


class SClient:
    """``openssl s_client`` on a pipe: lines in, everything it prints out."""

    def __init__(self, port: int, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-crlf", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.out = b""
        self.seen = 0  # where the next expect() starts looking

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def expect(self, want: bytes, timeout: float = 15) -> bytes:
        """Output up to the next ``want`` (s_client takes a whole stdin read as one
        command, so a line must not be sent before the previous one has acted)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while self.out.find(want, self.seen) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"no {want!r} in {self.out[-2000:]!r}"
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                assert chunk, f"s_client ended before {want!r}: {self.out[-2000:]!r}"
                self.out += chunk
        end = self.out.find(want, self.seen) + len(want)
        got, self.seen = self.out[self.seen : end], end
        return got

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def _wait_stat(srv: Server, key: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while _stat(srv, key) < n:
        assert time.monotonic() < deadline, f"{key} = {_stat(srv, key)}, expected {n}"
        time.sleep(0.2)


@needs_openssl
@pytest.mark.parametrize(
    "suite",
    ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"],
)
def test_each_suite_key_update_and_hibernation(hib_server: Server, suite: str) -> None:  # noqa: F811
    srv = hib_server
    c = SClient(srv.imaps, "-tls1_3", "-ciphersuites", suite)
    try:
        assert f"Cipher is {suite}".encode() in c.expect(b"* OK")
        c.send(b"a LOGIN alice@example.org alice-secret")
        c.expect(b"a OK")
        c.send(b"K")  # s_client: send a KeyUpdate that asks for ours
        c.expect(b"KEYUPDATE")
        c.send(b"b SELECT INBOX")
        c.expect(b"b OK")
        c.send(b"c IDLE")
        c.expect(b"+ idling")
        _wait_hibernated(srv, 1)
        lmtp_deliver(srv, message("after a key update"))
        c.expect(b"* 1 EXISTS")
        c.send(b"DONE")
        c.expect(b"c OK")
        c.send(b"k")  # a KeyUpdate that asks for nothing back
        c.expect(b"KEYUPDATE", timeout=5)
        c.send(b"d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = c.expect(b"d OK")
        assert b"after a key update" in out
        c.send(b"e LOGOUT")
        c.expect(b"e OK")
    finally:
        c.close()
    _wait_stat(srv, "tls_handoffs", 1)
    assert _stat(srv, "tls_kept_on_openssl") == 0


def test_tls12_session_stays_on_openssl(hib_server: Server) -> None:  # noqa: F811
    srv = hib_server
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", srv.imaps), timeout=10) as raw,
        ctx.wrap_socket(raw) as sock,
    ):
        assert sock.version() == "TLSv1.2"
        read_until(sock, rb"\* OK")
        sock.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
        read_until(sock, rb"\+ idling")
        _wait_hibernated(srv, 1)
        lmtp_deliver(srv, message("tls 1.2"))
        read_until(sock, rb"\* 1 EXISTS\r\n")
        sock.sendall(b"DONE\r\nd LOGOUT\r\n")
        read_until(sock, b"d OK")
    _wait_stat(srv, "tls_kept_on_openssl", 1)
    assert _stat(srv, "tls_handoffs") == 0


def test_tampered_record_ends_only_that_session(hib_server: Server) -> None:  # noqa: F811
    """A record that fails authentication gets a bad_record_mac alert and a close; the
    server goes on serving."""
    srv = hib_server
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inp, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inp, out, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", srv.imaps), timeout=10) as sock:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(out.read())
                inp.write(sock.recv(65536))
        sock.sendall(out.read())
        obj.write(b"a NOOP\r\n")
        wire = bytearray(out.read())
        wire[-3] ^= 1
        sock.sendall(bytes(wire))
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        inp.write(got)
        with pytest.raises(ssl.SSLError, match=r"BAD_RECORD_MAC|bad record mac"):
            while True:
                obj.read(65536)
    with socket.create_connection(("127.0.0.1", srv.imap), timeout=10) as sock:
        read_until(sock, rb"\* OK")
