"""A lean TLS layer between a plain TCP transport and a protocol.

asyncio's own TLS transport (``sslproto.SSLProtocol``) allocates a 256 KB receive
buffer for every connection; 100,000 idle TLS clients would need 25 GB. Here TLS is
an ``ssl.SSLObject`` over two ``MemoryBIO``s: ciphertext in from the socket,
plaintext up to the protocol, and back. Buffers exist only while data passes (CPython
sets OpenSSL's SSL_MODE_RELEASE_BUFFERS). After a TLS 1.3 handshake the session
leaves OpenSSL for our record layer (``transport/tls_records.py``), so an idle TLS session
costs two traffic secrets; TLS 1.2 sessions stay on OpenSSL (~16 KB each). Either way
the state is one Python object that a hibernated record can keep
(``net/hibernate.py``).

``TlsLayer`` is the protocol asyncio sees; ``TlsTransport`` is the transport the inner
protocol (an ``ImapConnection``) sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from pushmail.transport.small_reads import SmallReads
from pushmail.transport.tls_keylog import keylog_of
from pushmail.transport.tls_records import CLOSE_NOTIFY, SUITES, RecordLayer, TlsAlert

log = logging.getLogger("pushmail.tls")

_READ_CHUNK = 16384
_HANDSHAKE_TIMEOUT = 30.0
# A MemoryBIO keeps the largest buffer it ever held for the life of the connection
# (and so of a hibernated record): one 200 KB FETCH written in one piece left an idle
# TLS session at 226 KB instead of 16 KB. Bytes go through the BIOs in slices of this
# size, each drained before the next, which bounds both buffers to about a record.
_BIO_SLICE = 4096
# A ClientHello record: 5 bytes of record header, 4 of handshake header, 2 of version,
# then the 32-byte random that names the session in the key log.
_HELLO_RANDOM_END = 43


# Sessions handed to our own record layer after a TLS 1.3 handshake, and those kept
# on OpenSSL (TLS 1.2, or a handshake whose secrets could not be matched): per process.
COUNTS = {"tls_handoffs": 0, "tls_kept_on_openssl": 0}
# Connections in their handshake, per process: they hold a descriptor before any
# ImapConnection exists, so the per-worker connection cap counts them (transport/conncap.py).
HANDSHAKING = [0]


class TlsState:
    """The cipher state of one connection, movable between layers (hibernation).

    It starts as an OpenSSL ``SSLObject`` over two memory BIOs. When a TLS 1.3
    handshake completes and its context has a key log (``transport/tls_keylog.py``), the
    session moves to ``records`` (``transport/tls_records.py``) and the OpenSSL objects are
    freed: an idle session then costs its two traffic secrets, not ~16 KB.
    """

    __slots__ = ("_hello", "_keylog", "_secrets", "incoming", "obj", "outgoing", "records")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._keylog = keylog_of(context)
        if self._keylog is not None:
            self._keylog.claim()
        self.incoming: ssl.MemoryBIO | None = ssl.MemoryBIO()
        self.outgoing: ssl.MemoryBIO | None = ssl.MemoryBIO()
        self.obj: ssl.SSLObject | None = context.wrap_bio(
            self.incoming, self.outgoing, server_side=True
        )
        self.records: RecordLayer | None = None
        self._hello = b""  # the first bytes of the ClientHello, for its random
        self._secrets: dict[bytes, bytes] | None = {}

    @classmethod
    def from_records(cls, records: RecordLayer) -> TlsState:
        """A state already past the handshake (a session moved from another worker,
        ``net/homes.py``): no OpenSSL object at all."""
        state = cls.__new__(cls)
        state._keylog = None
        state._hello = b""
        state._secrets = None
        state.incoming = state.outgoing = None
        state.obj = None
        state.records = records
        return state

    def pending_input(self) -> bool:
        """Ciphertext received that is not yet a whole record."""
        if self.records is not None:
            return self.records.pending
        return self.incoming is not None and self.incoming.pending > 0

    # -- the handshake ------------------------------------------------------------
    def handshake(self, data: bytes | memoryview) -> tuple[bool, bytes, bytes]:
        """Ciphertext in → (done, bytes to send, ciphertext that follows the handshake).

        Raises ``ssl.SSLError`` (or ``OSError``) when the handshake fails.
        """
        assert self.obj is not None and self.incoming is not None and self.outgoing is not None
        if self._keylog is not None and len(self._hello) < _HELLO_RANDOM_END:
            self._hello += bytes(data[: _HELLO_RANDOM_END - len(self._hello)])
        self.incoming.write(data)
        try:
            self.obj.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False, self.outgoing.read(), b""
        finally:
            self._collect_secrets()  # also after a failure: no line is left behind
        rest = self._hand_off()
        if rest is not None:
            return True, b"", rest
        return True, self.outgoing.read(), b""

    def _collect_secrets(self) -> None:
        """Read the key log right after the call that wrote to it; keep our lines."""
        if self._keylog is None or self._secrets is None:
            return
        found = self._keylog.take()
        if len(self._hello) >= _HELLO_RANDOM_END and self._hello[0] == 22 and self._hello[5] == 1:
            self._secrets.update(found.get(self._hello[11:_HELLO_RANDOM_END], {}))

    def _hand_off(self) -> bytes | None:
        """Move a finished TLS 1.3 session to our record layer, if it can go.

        It goes only when nothing of it is left inside OpenSSL: no unsent output (so
        our first record is the server's application record number 0; the contexts
        send no session tickets), no decrypted input held, and both secrets known.
        Ciphertext after the client's Finished is still in the incoming BIO; it
        is returned, the first input of the record layer (``None``: it stays).
        """
        obj, incoming, outgoing = self.obj, self.incoming, self.outgoing
        assert obj is not None and incoming is not None and outgoing is not None
        keylog, secrets = self._keylog, self._secrets or {}
        self._keylog, self._hello, self._secrets = None, b"", None
        cipher = obj.cipher()
        client = secrets.get(b"CLIENT_TRAFFIC_SECRET_0")
        server = secrets.get(b"SERVER_TRAFFIC_SECRET_0")
        if (
            keylog is None
            or obj.version() != "TLSv1.3"
            or cipher is None
            or cipher[0] not in SUITES
            or client is None
            or server is None
            or outgoing.pending
            or obj.pending()
        ):
            COUNTS["tls_kept_on_openssl"] += 1
            return None
        self.records = RecordLayer(cipher[0], client, server)
        rest = incoming.read()
        self.obj = self.incoming = self.outgoing = None
        COUNTS["tls_handoffs"] += 1
        return rest

    # -- after it -----------------------------------------------------------------
    def decrypt(self, data: bytes | memoryview) -> tuple[bytes, bytes, bool]:
        """Ciphertext in → (plaintext, bytes to send, the peer closed the stream).

        Raises ``TlsAlert`` (record layer) or ``ssl.SSLError`` (OpenSSL).
        """
        if self.records is not None:
            return self.records.open(data)
        assert self.obj is not None and self.incoming is not None and self.outgoing is not None
        self.incoming.write(data)
        chunks = []
        eof = False
        try:
            while True:
                chunk = self.obj.read(_READ_CHUNK)
                if not chunk:  # the peer's close_notify (CPython returns b"" for it)
                    eof = True
                    break
                chunks.append(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLZeroReturnError:  # close_notify, where it is raised instead
            eof = True
        return b"".join(chunks), self.outgoing.read(), eof

    def encrypt(self, data: bytes) -> bytes:
        """Plaintext in, the ciphertext to send out (see ``_BIO_SLICE``)."""
        if self.records is not None:
            return self.records.seal(data)
        assert self.obj is not None and self.outgoing is not None
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

    def close_notify(self) -> bytes:
        """Our closing alert, as bytes to send."""
        if self.records is not None:
            return self.records.alert(CLOSE_NOTIFY)
        assert self.obj is not None and self.outgoing is not None
        with contextlib.suppress(ssl.SSLError, ValueError):
            self.obj.unwrap()
        return self.outgoing.read()


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
            obj = self._layer.state.obj
            return obj.getpeercert() if obj is not None else None
        return self._layer.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._layer.inner = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._layer.inner


class TlsLayer(SmallReads):
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
            HANDSHAKING[0] += 1

    def data_received(self, data: bytes) -> None:
        if len(data) <= _BIO_SLICE or self.state.records is not None:
            self._receive(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), _BIO_SLICE):
            if self.closing:
                return
            self._receive(view[start : start + _BIO_SLICE])

    def _receive(self, data: bytes | memoryview) -> None:
        """One slice of ciphertext in; what it completes goes up as plaintext."""
        if not self._handshaken:
            rest = self._handshake(data)
            if rest is None:
                return
            data = rest
        state = self.state
        try:
            plain, out, eof = state.decrypt(data)
        except TlsAlert as exc:
            log.info("TLS error: %s", exc)
            if exc.description is not None and state.records is not None:
                self._send(state.records.alert(exc.description))
            self.closing = True
            self.raw.close()
            return
        except ssl.SSLError as exc:
            log.info("TLS error: %s", exc)
            self._send(state.outgoing.read() if state.outgoing is not None else b"")
            self.abort()
            return
        self._send(out)
        if plain and not self.closing:
            self.inner.data_received(plain)
        if eof:
            self.close()

    def _handshake(self, data: bytes | memoryview) -> bytes | None:
        """Feed the handshake; once it is done, the ciphertext after it (``None``
        until then)."""
        try:
            done, out, rest = self.state.handshake(data)
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake failed: %s", exc)
            if self.state.outgoing is not None:
                self._send(self.state.outgoing.read())
            self.abort()
            return None
        self._send(out)
        if not done:
            return None
        self._handshaken = True
        self._stop_timer()
        self.inner.connection_made(self._transport)
        return rest

    def eof_received(self) -> bool | None:
        self.inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._stop_timer()
        if self._handshaken:
            self.inner.connection_lost(exc)

    def _stop_timer(self) -> None:
        """The handshake ended (done or failed): no timeout, no longer counted."""
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
            HANDSHAKING[0] -= 1

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

    def _send(self, out: bytes) -> None:
        if out and not self.raw.is_closing():
            self.raw.write(out)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self._handshaken:
            self._send(self.state.close_notify())
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
