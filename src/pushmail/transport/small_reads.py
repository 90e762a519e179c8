"""Socket reads of at most ``READ_SIZE`` bytes, into a buffer the thread shares.

asyncio's plain ``Protocol`` reads up to 256 KiB per ``recv``, and all of it lands in
the connection's input buffer before the protocol can pause reading. A client that
pipelines commands and never reads the replies would then hold a connection's input
at its pause threshold plus a quarter megabyte (issue 15: input a peer controls is
bounded before it is buffered). As a ``BufferedProtocol`` the socket reads into a
buffer we hand it, so we choose the size of every read.

The buffer is one per thread, not one per connection: the transport calls
``get_buffer``, ``recv_into`` and ``buffer_updated`` in one callback, and
``buffer_updated`` copies the bytes out before any other read on that loop, so an
idle connection costs nothing for it.
"""

from __future__ import annotations

import asyncio
import threading

READ_SIZE = 64 * 1024

_local = threading.local()


def _buffer() -> memoryview:
    buf: memoryview | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = memoryview(bytearray(READ_SIZE))
    return buf


class SmallReads(asyncio.Protocol, asyncio.BufferedProtocol):
    """A ``Protocol`` whose ``data_received`` gets at most ``READ_SIZE`` bytes at a
    time when it is the socket's own protocol (layers above it call
    ``data_received`` directly, as before)."""

    def get_buffer(self, sizehint: int) -> memoryview:
        return _buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_buffer()[:nbytes]))
