"""COMPRESS=DEFLATE (RFC 4978): raw DEFLATE in both directions, with memory in mind.

Two layers, as for TLS (``transport/tls_layer.py``):

- ``Deflater`` / ``Inflater`` are sans-IO: bytes in, bytes out, no sockets.
- ``CompressLayer`` (the protocol asyncio sees) and ``CompressTransport`` (the
  transport the ``ImapConnection`` writes to) put them under a running connection.

Memory is the point. zlib's defaults (windowBits 15, memLevel 8) cost about 256 KiB
for the deflate state plus a 32 KiB inflate window per connection: 100,000 idle
clients would need 28 GiB. What each side may choose:

- **Our deflater** can use any window: the peer's inflater copes with a smaller one.
  We use ``SERVER_WBITS`` = 12 (a 4 KiB window) and ``SERVER_MEMLEVEL`` = 4: zlib
  allocates ``2**(wbits+2) + 2**(memLevel+9)`` = 16 KiB + 8 KiB (plus ~6 KiB of
  fixed state) instead of 256 KiB (and none at all after ``Deflater.release``).
  IMAP responses repeat within a few hundred bytes (``* n FETCH (UID``, header
  names, flag lists), so the smaller window loses little: see
  ``docs/extensions.md`` for measured ratios.
- **Our inflater** must accept whatever window the client used, so it is created
  with windowBits 15; zlib allocates that 32 KiB window lazily, on the first block
  that needs it, and the inflater is small until then.

Each batch of output is flushed with ``Z_SYNC_FLUSH`` (RFC 4978 §4: the peer must be
able to decode every response as soon as it arrives); that costs 4-5 bytes per batch,
which is why the driver writes one batch per command rather than per line.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from pushmail.transport.small_reads import SmallReads

log = logging.getLogger("pushmail.compress")

SERVER_WBITS = 12
SERVER_MEMLEVEL = 4
SERVER_LEVEL = 6
CLIENT_WBITS = 15  # the most any peer may use; RFC 4978 allows any
# A cap on what one read may inflate to, so a tiny "zip bomb" cannot make us hold
# megabytes at once; the rest is inflated as the protocol consumes (per read).
MAX_INFLATE_CHUNK = 256 * 1024


class CompressionError(Exception):
    """The peer sent data that is not valid raw DEFLATE."""


class Deflater:
    """Our side: compresses response batches, each ending in a sync flush.

    ``release()`` (or ``persistent=False``: after every batch) drops the zlib
    stream; the next batch starts a fresh one. A raw DEFLATE stream is just a run of
    blocks and after a sync flush nothing later needs to refer back, so the peer
    cannot tell. The saving is the deflate state (~30 KiB); the price is that the
    next batch cannot refer to earlier text, which for tiny batches such as
    ``* 5 EXISTS`` costs more than it saves (``docs/extensions.md``), so the
    default keeps the stream."""

    __slots__ = ("_level", "_mem_level", "_persistent", "_wbits", "_z")

    def __init__(
        self,
        level: int = SERVER_LEVEL,
        wbits: int = SERVER_WBITS,
        mem_level: int = SERVER_MEMLEVEL,
        persistent: bool = True,
    ) -> None:
        self._level, self._wbits, self._mem_level = level, wbits, mem_level
        self._persistent = persistent
        self._z: zlib._Compress | None = None

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed and flushed: the peer can decode all of it now."""
        z = self._z
        if z is None:
            z = zlib.compressobj(self._level, zlib.DEFLATED, -self._wbits, self._mem_level)
        out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
        self._z = z if self._persistent else None
        return out

    def release(self) -> None:
        """Drop the zlib stream now (e.g. when the connection goes idle)."""
        self._z = None

    @property
    def holding_state(self) -> bool:
        return self._z is not None


class Inflater:
    """The client's side: raw DEFLATE in, plaintext out, in bounded pieces."""

    __slots__ = ("_z",)

    def __init__(self, wbits: int = CLIENT_WBITS) -> None:
        self._z = zlib.decompressobj(-wbits)

    def decompress(self, data: bytes) -> bytes:
        """Plaintext for ``data`` plus anything held back by the chunk cap. Raises
        ``CompressionError`` for invalid input or a stream that ended (RFC 4978 has
        no end of stream: the connection closes instead)."""
        try:
            out = self._z.decompress(self._z.unconsumed_tail + data, MAX_INFLATE_CHUNK)
        except zlib.error as exc:
            raise CompressionError(str(exc)) from exc
        if self._z.eof:
            raise CompressionError("the DEFLATE stream ended")
        return out

    @property
    def pending(self) -> bool:
        """Input not yet inflated because of the chunk cap."""
        return bool(self._z.unconsumed_tail)


class CompressTransport(asyncio.Transport):
    """What the ``ImapConnection`` writes to once COMPRESS is active."""

    def __init__(self, layer: CompressLayer) -> None:
        super().__init__()
        self._layer = layer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._layer.raw.write(self._layer.deflater.compress(bytes(data)))

    def is_closing(self) -> bool:
        return self._layer.raw.is_closing()

    def close(self) -> None:
        self._layer.raw.close()

    def abort(self) -> None:
        self._layer.raw.abort()

    def pause_reading(self) -> None:
        self._layer.raw.pause_reading()

    def resume_reading(self) -> None:
        self._layer.raw.resume_reading()
        self._layer.drain_pending()

    def is_reading(self) -> bool:
        return self._layer.raw.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._layer.raw.get_write_buffer_size()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._layer.inner = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._layer.inner

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":  # not a plain socket any more (hibernation must skip us)
            return default
        if name == "compression":
            return "DEFLATE"
        return self._layer.raw.get_extra_info(name, default)


class CompressLayer(SmallReads):
    """Sits between the transport below (TCP or our TLS layer) and the connection."""

    def __init__(self, inner: asyncio.Protocol, raw: asyncio.Transport) -> None:
        self.inner = inner
        self.raw = raw
        self.deflater = Deflater()
        self.inflater = Inflater()
        self.transport = CompressTransport(self)

    def data_received(self, data: bytes) -> None:
        self._inflate(data)
        self.drain_pending()

    def _inflate(self, data: bytes) -> None:
        try:
            plain = self.inflater.decompress(data)
        except CompressionError as exc:
            log.info("bad DEFLATE data from client: %s", exc)
            self.raw.abort()
            return
        if plain:
            self.inner.data_received(plain)

    def drain_pending(self) -> None:
        """Inflate what the chunk cap held back, while the inner side reads."""
        while self.inflater.pending and self.raw.is_reading() and not self.raw.is_closing():
            self._inflate(b"")

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def start_compression(inner: asyncio.Protocol, raw: asyncio.Transport) -> CompressTransport:
    """Put a compression layer under ``inner``, which from now on must write to the
    returned transport. Call right after the tagged OK was written uncompressed."""
    layer = CompressLayer(inner, raw)
    raw.set_protocol(layer)
    return layer.transport
