"""COMPRESS=DEFLATE (RFC 4978): the sans-IO pair and the layer under a live
connection, including a client that uses zlib's default (largest) window."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, live_server

from pushmail.transport.compress import (
    MAX_INFLATE_CHUNK,
    CompressionError,
    Deflater,
    Inflater,
)


@given(st.lists(st.binary(max_size=3000), max_size=8))
def test_every_batch_decodes_on_arrival(batches: list[bytes]) -> None:
    """Z_SYNC_FLUSH: a standard raw inflater decodes each batch without waiting."""
    d = Deflater()
    peer = zlib.decompressobj(-15)
    for batch in batches:
        assert peer.decompress(d.compress(batch)) == batch


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(9, 15))
def test_inflater_accepts_any_client_window(batches: list[bytes], wbits: int) -> None:
    client = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    inf = Inflater()
    for batch in batches:
        data = client.compress(batch) + client.flush(zlib.Z_SYNC_FLUSH)
        out = inf.decompress(data)
        while inf.pending:
            out += inf.decompress(b"")
        assert out == batch


def test_a_bomb_is_inflated_in_bounded_pieces() -> None:
    client = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = client.compress(b"a" * (8 * MAX_INFLATE_CHUNK)) + client.flush(zlib.Z_SYNC_FLUSH)
    inf = Inflater()
    total = 0
    piece = inf.decompress(bomb)
    while True:
        assert len(piece) <= MAX_INFLATE_CHUNK
        total += len(piece)
        if not inf.pending:
            break
        piece = inf.decompress(b"")
    assert total == 8 * MAX_INFLATE_CHUNK


def test_garbage_and_end_of_stream_are_errors() -> None:
    with pytest.raises(CompressionError):
        Inflater().decompress(b"\xff\xff\xff\xff")
    client = zlib.compressobj(6, zlib.DEFLATED, -15)
    finished = client.compress(b"x") + client.flush(zlib.Z_FINISH)
    with pytest.raises(CompressionError):
        Inflater().decompress(finished)


def test_compressed_session_end_to_end(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as cl:
        cl.login()
        caps = cl.command("c", "CAPABILITY")[0]
        assert b" COMPRESS=DEFLATE" in caps
        assert cl.command("z", "COMPRESS DEFLATE") == [b"z OK DEFLATE active"]
        cl.start_compression()
        caps = cl.command("c2", "CAPABILITY")[0]
        assert b"COMPRESS=DEFLATE" not in caps  # RFC 4978 §3: not offered again
        for i in range(20):
            srv.deliver("INBOX", f"message {i}")
        cl.command("s", "SELECT INBOX")
        before = cl.wire_in
        reply = cl.command("f", "FETCH 1:* (ENVELOPE)")
        plain = sum(len(x) + 2 for x in reply)
        assert len(reply) == 21 and reply[-1] == b"f OK FETCH completed"
        assert cl.wire_in - before < plain / 2  # envelopes repeat: DEFLATE pays


def test_bad_deflate_from_client_closes(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as cl:
        cl.login()
        cl.command("z", "COMPRESS DEFLATE")
        cl.sock.sendall(b"\xff\xff\xff\xff this is not deflate\r\n")
        with pytest.raises(ConnectionError):
            cl.line()
        assert srv.ctx is not None
