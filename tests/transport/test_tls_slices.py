"""Large writes and reads go through the lean TLS layer's memory BIOs in slices: a BIO
keeps its largest buffer for the life of the connection (and of its hibernated
record), so no single pass may put more than a slice into one."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

from pushmail.transport.tls import ensure_certificate, server_context
from pushmail.transport.tls_layer import _BIO_SLICE, TlsLayer, TlsState

BIG = bytes(range(256)) * 800  # 200 KB: a large FETCH, or a large APPEND


def pair(tmp_path: Path) -> tuple[TlsState, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A server TlsState and a client SSLObject, handshaken over memory."""
    server = TlsState(server_context(*ensure_certificate(tmp_path, "localhost")))
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out)
    for _ in range(10):
        for obj in (client, server.obj):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        server.incoming.write(c_out.read())
        c_in.write(server.outgoing.read())
    client.do_handshake()
    return server, client, c_in, c_out


def records(wire: bytes) -> list[int]:
    """The payload lengths of the TLS records in ``wire``."""
    out, pos = [], 0
    while pos < len(wire):
        length = int.from_bytes(wire[pos + 3 : pos + 5], "big")
        out.append(length)
        pos += 5 + length
    assert pos == len(wire)
    return out


def test_a_large_write_is_encrypted_in_slices(tmp_path: Path) -> None:
    server, client, c_in, _ = pair(tmp_path)
    wire = server.encrypt(BIG)
    sizes = records(wire)
    assert len(sizes) >= len(BIG) // _BIO_SLICE
    assert max(sizes) <= _BIO_SLICE + 256  # a slice plus the AEAD's overhead
    c_in.write(wire)
    got = b""
    while len(got) < len(BIG):
        got += client.read(65536)
    assert got == BIG


class Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.got = b""

    def data_received(self, data: bytes) -> None:
        self.got += data


class Raw(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = b""

    def write(self, data: Any) -> None:
        self.sent += bytes(data)

    def is_closing(self) -> bool:
        return False


def test_a_large_read_arrives_whole_and_in_order(tmp_path: Path) -> None:
    server, client, _, c_out = pair(tmp_path)
    inner = Inner()
    layer = TlsLayer(inner, ssl.create_default_context(), state=server)
    layer.raw = Raw()
    client.write(BIG)
    layer.data_received(c_out.read())  # 200 KB of ciphertext in one call
    assert inner.got == BIG
