"""The TLS 1.3 record layer (RFC 8446 §5), for sessions OpenSSL has handshaken.

Why this exists: an idle OpenSSL session costs about 16 KB (the ``SSL`` struct, two
cipher contexts, BIOs, the session), which made an idle TLS IMAP session cost 20 KB
where a plaintext one costs 3–5. Once a TLS 1.3 handshake is done, all a connection
needs is two traffic secrets and two sequence numbers: what Linux's kernel TLS keeps
after OpenSSL hands a socket over, and what this module keeps after ``TlsState`` hands
a session over (``transport/tls_layer.py``; the secrets come from ``transport/tls_keylog.py``).
OpenSSL still does every handshake; this module only protects records, with the
``cryptography`` package's AEADs, and holds no cipher object between calls, so an idle
session costs a few hundred bytes.

What it implements, and nothing more (anything else is a fatal alert):

- application data both ways, at most 2^14 bytes per record;
- alerts: ``close_notify`` ends the stream, ``user_canceled`` is ignored, any other
  alert is fatal (§6);
- KeyUpdate from the peer (§4.6.3), answered with our own when it asks; we update our
  own keys before a key has protected 2^24 records, below AES-GCM's limit (§5.5);
- every check a receiver owes: record and plaintext length limits (``record_overflow``),
  the outer content type, the AEAD tag before any plaintext is used
  (``bad_record_mac``), padding, handshake messages that may not come after the
  handshake or that span a key change (``unexpected_message``).

I/O-free: bytes in, bytes out; the caller owns the socket.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# Content types (§5.1) and the alerts this layer sends (§6).
_ALERT = 21
_HANDSHAKE = 22
_APPLICATION_DATA = 23

CLOSE_NOTIFY = 0
UNEXPECTED_MESSAGE = 10
BAD_RECORD_MAC = 20
RECORD_OVERFLOW = 22
ILLEGAL_PARAMETER = 47
DECODE_ERROR = 50
_USER_CANCELED = 90

_KEY_UPDATE = 24  # handshake message type (§4)

_MAX_PLAINTEXT = 1 << 14
_MAX_CIPHERTEXT = _MAX_PLAINTEXT + 256
_HEADER = 5
_TAG = 16
# Records one key may protect before we move to the next (§5.5: AES-GCM's limit is
# 2^24.5 full-size records); also far below the 2^64 sequence number space.
REKEY_AFTER = 1 << 24

Aead = AESGCM | ChaCha20Poly1305

# Cipher suite name (as OpenSSL's ``cipher()`` gives it) → (hash, key length, AEAD).
SUITES: dict[str, tuple[str, int, Callable[[bytes], Aead]]] = {
    "TLS_AES_128_GCM_SHA256": ("sha256", 16, AESGCM),
    "TLS_AES_256_GCM_SHA384": ("sha384", 32, AESGCM),
    "TLS_CHACHA20_POLY1305_SHA256": ("sha256", 32, ChaCha20Poly1305),
}


class TlsAlert(Exception):
    """The session is over: send ``alert(description)`` (unless it is ``None``: the
    peer's own fatal alert needs no answer) and close."""

    def __init__(self, description: int | None, why: str) -> None:
        super().__init__(why)
        self.description = description


def hkdf_expand_label(secret: bytes, label: bytes, length: int, hash_name: str) -> bytes:
    """HKDF-Expand-Label with an empty context (RFC 8446 §7.1, RFC 5869 §2.3)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


class TrafficKeys:
    """One direction's secret, key, IV and sequence number (§5.3, §7.3)."""

    __slots__ = ("iv", "key", "secret", "seq", "suite")

    def __init__(self, suite: str, secret: bytes) -> None:
        hash_name, key_len, _ = SUITES[suite]
        self.suite = suite
        self.secret = secret
        self.key = hkdf_expand_label(secret, b"key", key_len, hash_name)
        self.iv = int.from_bytes(hkdf_expand_label(secret, b"iv", 12, hash_name), "big")
        self.seq = 0

    def next(self) -> TrafficKeys:
        """The keys after a KeyUpdate: application_traffic_secret_N+1 (§7.2)."""
        hash_name = SUITES[self.suite][0]
        size = hashlib.new(hash_name).digest_size
        secret = hkdf_expand_label(self.secret, b"traffic upd", size, hash_name)
        return TrafficKeys(self.suite, secret)

    def aead(self) -> Aead:
        return SUITES[self.suite][2](self.key)

    def nonce(self) -> bytes:
        """The per-record nonce: the IV XOR the 64-bit sequence number (§5.3)."""
        nonce = (self.iv ^ self.seq).to_bytes(12, "big")
        self.seq += 1
        return nonce


# RecordLayer.export: (suite, client secret, its sequence number, server secret, its
# sequence number).
Exported = tuple[str, bytes, int, bytes, int]


class RecordLayer:
    """Server-side TLS 1.3 records after the handshake.

    ``seal`` protects outgoing application data; ``open`` takes ciphertext as it
    arrives and returns what it completes. Both keep their state between calls (a
    partial record waits in ``_partial``), so ciphertext may arrive split anywhere.
    """

    __slots__ = ("_eof", "_handshake", "_partial", "_read", "_write")

    def __init__(self, suite: str, client_secret: bytes, server_secret: bytes) -> None:
        self._read = TrafficKeys(suite, client_secret)
        self._write = TrafficKeys(suite, server_secret)
        self._partial = b""
        self._handshake = b""  # a handshake message split over records
        self._eof = False

    @property
    def pending(self) -> bool:
        """Ciphertext received but not yet a whole record."""
        return bool(self._partial)

    def export(self) -> Exported | None:
        """The whole state, for another process to go on with (``restore``): the
        suite, then each direction's current secret and sequence number. ``None``
        while anything is held between records (a partial record, half a KeyUpdate)
        or the peer has closed: such a state does not move."""
        if self._partial or self._handshake or self._eof:
            return None
        r, w = self._read, self._write
        return (w.suite, r.secret, r.seq, w.secret, w.seq)

    @classmethod
    def restore(cls, state: Exported) -> RecordLayer:
        """A record layer that goes on exactly where ``export``'s left off."""
        suite, read_secret, read_seq, write_secret, write_seq = state
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}")
        layer = cls(suite, read_secret, write_secret)
        layer._read.seq = read_seq
        layer._write.seq = write_seq
        return layer

    @property
    def suite(self) -> str:
        return self._write.suite

    # -- out ----------------------------------------------------------------------
    def seal(self, data: bytes | memoryview) -> bytes:
        """Application data → records of at most 2^14 bytes each."""
        if not data:
            return b""
        return self._protect(_APPLICATION_DATA, data)

    def alert(self, description: int) -> bytes:
        """An alert record: a warning for close_notify, fatal for anything else."""
        level = 1 if description in (CLOSE_NOTIFY, _USER_CANCELED) else 2
        return self._record(self._write.aead(), _ALERT, bytes([level, description]))

    def _protect(self, content_type: int, data: bytes | memoryview) -> bytes:
        aead = self._write.aead()
        out = []
        view = memoryview(data)
        for start in range(0, len(view), _MAX_PLAINTEXT):
            out.append(self._record(aead, content_type, view[start : start + _MAX_PLAINTEXT]))
            if self._write.seq >= REKEY_AFTER:  # tell the peer, then switch (§4.6.3)
                out.append(self._key_update(aead))
                aead = self._write.aead()
        return b"".join(out)

    def _record(self, aead: Aead, content_type: int, content: bytes | memoryview) -> bytes:
        """One protected record under the current write key (§5.2)."""
        inner = bytes(content) + bytes([content_type])
        header = b"\x17\x03\x03" + (len(inner) + _TAG).to_bytes(2, "big")
        return header + aead.encrypt(self._write.nonce(), inner, header)

    def _key_update(self, aead: Aead) -> bytes:
        """Our KeyUpdate (update_not_requested) under the current key, then the switch
        to the next one: the only way our write key ever changes."""
        record = self._record(aead, _HANDSHAKE, bytes([_KEY_UPDATE, 0, 0, 1, 0]))
        self._write = self._write.next()
        return record

    # -- in -----------------------------------------------------------------------
    def open(self, data: bytes | memoryview) -> tuple[bytes, bytes, bool]:
        """Ciphertext in → (application data, bytes to send back, peer closed).

        Raises ``TlsAlert`` when the peer broke the protocol; nothing the failing
        record carried is returned, though data from earlier whole records is lost
        with it (the connection is over in any case).
        """
        buf = self._partial + bytes(data) if self._partial else bytes(data)
        plain: list[bytes] = []
        reply: list[bytes] = []
        pos = 0
        while not self._eof and len(buf) - pos >= _HEADER:
            length = int.from_bytes(buf[pos + 3 : pos + 5], "big")
            if length > _MAX_CIPHERTEXT:
                raise TlsAlert(RECORD_OVERFLOW, "record longer than 2^14 + 256")
            end = pos + _HEADER + length
            if end > len(buf):
                break
            header = buf[pos : pos + _HEADER]
            if header[0] != _APPLICATION_DATA:
                # Unprotected records (a late change_cipher_spec among them) may not
                # follow the handshake (§5).
                raise TlsAlert(UNEXPECTED_MESSAGE, f"unprotected record type {header[0]}")
            content_type, body = self._unprotect(header, buf[pos + _HEADER : end])
            pos = end
            if content_type == _APPLICATION_DATA:
                if self._handshake:
                    raise TlsAlert(UNEXPECTED_MESSAGE, "data inside a handshake message")
                plain.append(body)
            elif content_type == _ALERT:
                self._on_alert(body)
            elif content_type == _HANDSHAKE:
                reply.append(self._on_handshake(body))
            else:
                raise TlsAlert(UNEXPECTED_MESSAGE, f"content type {content_type}")
        self._partial = buf[pos:] if not self._eof else b""
        return b"".join(plain), b"".join(reply), self._eof

    def _unprotect(self, header: bytes, body: bytes) -> tuple[int, bytes]:
        keys = self._read
        if len(body) < _TAG + 1:
            raise TlsAlert(DECODE_ERROR, "record shorter than its tag")
        try:
            inner = keys.aead().decrypt(keys.nonce(), body, header)
        except InvalidTag:
            raise TlsAlert(BAD_RECORD_MAC, "record failed authentication") from None
        if len(inner) > _MAX_PLAINTEXT + 1:
            raise TlsAlert(RECORD_OVERFLOW, "plaintext longer than 2^14")
        end = len(inner.rstrip(b"\x00"))
        if end == 0:
            raise TlsAlert(UNEXPECTED_MESSAGE, "record with no content type")
        return inner[end - 1], inner[: end - 1]

    def _on_alert(self, body: bytes) -> None:
        if len(body) != 2:
            raise TlsAlert(DECODE_ERROR, "malformed alert")
        if body[1] == CLOSE_NOTIFY:
            self._eof = True
        elif body[1] != _USER_CANCELED:
            raise TlsAlert(None, f"peer sent alert {body[1]}")

    def _on_handshake(self, body: bytes) -> bytes:
        """Post-handshake messages: only KeyUpdate may come from a client (§4.6). It
        is 5 bytes and may arrive split over records, but nothing may follow it in
        its record (§5.1: handshake messages MUST NOT span key changes)."""
        if not body:
            raise TlsAlert(UNEXPECTED_MESSAGE, "empty handshake record")
        msg = self._handshake + body
        if msg[0] != _KEY_UPDATE:
            raise TlsAlert(UNEXPECTED_MESSAGE, f"handshake type {msg[0]} after the handshake")
        if len(msg) >= 4 and int.from_bytes(msg[1:4], "big") != 1:
            raise TlsAlert(DECODE_ERROR, "malformed KeyUpdate")
        if len(msg) < 5:
            self._handshake = msg
            return b""
        if len(msg) > 5:
            raise TlsAlert(UNEXPECTED_MESSAGE, "data after KeyUpdate in its record")
        if msg[4] not in (0, 1):
            raise TlsAlert(ILLEGAL_PARAMETER, "KeyUpdate request out of range")
        self._handshake = b""
        self._read = self._read.next()
        return self._key_update(self._write.aead()) if msg[4] == 1 else b""
