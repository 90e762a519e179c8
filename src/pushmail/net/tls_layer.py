"""A lean TLS layer between a plain TCP transport and a protocol.

asyncio's own TLS transport (``sslproto.SSLProtocol``) allocates a 256 KB receive
buffer for every connection; 100,000 idle TLS clients would need 25 GB. Here TLS is
an ``ssl.SSLObject`` over two ``MemoryBIO``s: ciphertext in from the socket,
plaintext up to the protocol, and back. Buffers exist only while data passes (CPython
sets OpenSSL's SSL_MODE_RELEASE_BUFFERS), so an idle TLS session costs the OpenSSL
session state and little else — and because that state is three Python objects, a
hibernated record can keep it (``net/hibernate.py``).

``TlsLayer`` is the protocol asyncio sees; ``TlsTransport`` is the transport the inner
protocol (an ``ImapConnection``) sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

log = logging.getLogger("pushmail.tls")

_READ_CHUNK = 16384
_HANDSHAKE_TIMEOUT = 30.0
# A MemoryBIO keeps the largest buffer it ever held for the life of the connection
# (and so of a hibernated record): one 200 KB FETCH written in one piece left an idle
# TLS session at 226 KB instead of 16 KB. Bytes go through the BIOs in slices of this
# size, each drained before the next, which bounds both buffers to about a record.
_BIO_SLICE = 4096


class TlsState:
    """The cipher state of one connection, movable between layers (hibernation)."""

    __slots__ = ("incoming", "obj", "outgoing")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def encrypt(self, data: bytes) -> bytes:
        """Plaintext in, the ciphertext to send out (see ``_BIO_SLICE``)."""
        if len(data) <= _BIO_SLICE:
            if data:
                self.obj.write(data)
            return self.outgoing.read()
        view = memoryview(data)
        out = [self.outgoing.read()]
        for start in range(0, len(view), _BIO_SLICE):
            self.obj.write(view[start : start + _BIO_SLICE])
            out.append(self.outgoing.read())
        return b"".join(out)


class TlsTransport(asyncio.Transport):
    """What the inner protocol writes to: encrypts, hands bytes to the raw transport."""

    def __init__(self, layer: TlsLayer) -> None:
        super().__init__()
        self._layer = layer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._layer.send_plain(bytes(data))

    def is_closing(self) -> bool:
        return self._layer.closing

    def close(self) -> None:
        self._layer.close()

    def abort(self) -> None:
        self._layer.abort()

    def pause_reading(self) -> None:
        self._layer.raw.pause_reading()

    def resume_reading(self) -> None:
        self._layer.raw.resume_reading()

    def is_reading(self) -> bool:
        return self._layer.raw.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._layer.raw.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._layer.state.obj
        if name == "tls_state":
            return self._layer.state
        if name == "peercert":
            return self._layer.state.obj.getpeercert()
        return self._layer.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._layer.inner = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._layer.inner


class TlsLayer(asyncio.Protocol):
    """Server-side TLS for one connection, wrapping ``inner``."""

    def __init__(
        self, inner: asyncio.Protocol, context: ssl.SSLContext, state: TlsState | None = None
    ) -> None:
        self.inner = inner
        self.state = state or TlsState(context)
        self.raw: asyncio.Transport = None  # type: ignore[assignment]
        self.closing = False
        self._handshaken = state is not None
        self._transport = TlsTransport(self)
        self._timeout: asyncio.TimerHandle | None = None

    # -- from the socket --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        if self._handshaken:  # resumed with an established session
            self.inner.connection_made(self._transport)
        else:
            loop = asyncio.get_running_loop()
            self._timeout = loop.call_later(_HANDSHAKE_TIMEOUT, self.abort)

    def data_received(self, data: bytes) -> None:
        if len(data) <= _BIO_SLICE:
            self._receive(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), _BIO_SLICE):
            if self.closing:
                return
            self._receive(view[start : start + _BIO_SLICE])

    def _receive(self, data: bytes | memoryview) -> None:
        """One slice of ciphertext in; what it completes goes up as plaintext."""
        self.state.incoming.write(data)
        if not self._handshaken and not self._handshake():
            return
        chunks = []
        try:
            while True:
                chunk = self.state.obj.read(_READ_CHUNK)
                if not chunk:  # the peer's close_notify (CPython returns b"" for it)
                    self._flush()
                    self.close()
                    break
                chunks.append(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLZeroReturnError:  # close_notify, where it is raised instead
            self._flush()
            self.close()
        except ssl.SSLError as exc:
            log.info("TLS error: %s", exc)
            self.abort()
            return
        self._flush()
        plain = b"".join(chunks)
        if plain and not self.closing:
            self.inner.data_received(plain)

    def _handshake(self) -> bool:
        try:
            self.state.obj.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake failed: %s", exc)
            self._flush()
            self.abort()
            return False
        self._flush()
        self._handshaken = True
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self.inner.connection_made(self._transport)
        return True

    def eof_received(self) -> bool | None:
        self.inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._timeout is not None:
            self._timeout.cancel()
        if self._handshaken:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- from the inner protocol ------------------------------------------------
    def send_plain(self, data: bytes) -> None:
        if self.closing or not data:
            return
        try:
            out = self.state.encrypt(data)
        except ssl.SSLError as exc:
            log.info("TLS write failed: %s", exc)
            self.abort()
            return
        self.raw.write(out)

    def _flush(self) -> None:
        out = self.state.outgoing.read()
        if out and not self.raw.is_closing():
            self.raw.write(out)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self._handshaken:
            with contextlib.suppress(ssl.SSLError, ValueError):
                self.state.obj.unwrap()
            self._flush()
        self.raw.close()

    def abort(self) -> None:
        self.closing = True
        if self.raw is not None:
            self.raw.abort()

    def detach(self) -> TlsState:
        """Give up the raw transport without a close_notify (hibernation)."""
        self.closing = True
        self.raw.abort()
        return self.state
