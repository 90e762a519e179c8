"""A scripted, blocking IMAP client for the cost benchmark: what a phone would send.

Blocking on purpose: each step is measured as a window of captured packets, so the
script must know exactly when a step's last byte arrived. TLS is Python's ``ssl`` with
a context the caller keeps, so a TLS 1.3 session ticket from one connection can resume
the next. COMPRESS DEFLATE runs above TLS, as RFC 4978 puts it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
import zlib

_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


class ImapError(Exception):
    """A NO/BAD, or the server closed the connection."""


def tls_context(tickets: bool = True) -> ssl.SSLContext:
    """TLS 1.3 client context, no certificate checks (a benchmark on a private link)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


class WireClient:
    def __init__(
        self,
        host: str,
        port: int,
        ctx: ssl.SSLContext | None,
        session: ssl.SSLSession | None = None,
        source: str | None = None,
    ) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(30)
        if source is not None:
            raw.bind((source, 0))
        raw.connect((host, port))
        self._local_port = int(raw.getsockname()[1])
        self.sock: socket.socket | ssl.SSLSocket = (
            raw if ctx is None else ctx.wrap_socket(raw, session=session)
        )
        self._buf = bytearray()
        self._tags = 0
        self._deflate: zlib._Compress | None = None
        self._inflate: zlib._Decompress | None = None
        self.still_here = 0  # server keepalives read so far (they may spoil a window)
        self._idle_tag = b""
        self.greeting = self.readline()

    @property
    def local_port(self) -> int:
        return self._local_port

    @property
    def resumed(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.session_reused

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- bytes ----------------------------------------------------------------------
    def _fill(self, timeout: float = 30.0) -> None:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ImapError("server closed the connection")
        self._buf += self._inflate.decompress(data) if self._inflate is not None else data

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readline(self, timeout: float = 30.0) -> bytes:
        """One response line with its literals inlined, CRLF stripped."""
        parts = []
        deadline = time.monotonic() + timeout
        while True:
            while (end := self._buf.find(b"\r\n")) < 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no line in time")
                self._fill(left)
            line = self._take(end + 2)[:-2]
            parts.append(line)
            m = _LITERAL.search(line)
            if m is None:
                if line.startswith(b"* OK Still here"):
                    self.still_here += 1
                return b"".join(parts)
            parts.append(self._take(int(m.group(1))))

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    # -- IMAP -----------------------------------------------------------------------
    def next_tag(self) -> bytes:
        self._tags += 1
        return f"c{self._tags}".encode()

    def command(self, text: str | bytes) -> list[bytes]:
        """Send one command; return its untagged lines; raise on NO/BAD."""
        tag = self.next_tag()
        body = text.encode() if isinstance(text, str) else text
        self.send(tag + b" " + body + b"\r\n")
        return self.until_tagged(tag, body[:40])

    def until_tagged(self, tag: bytes, what: bytes = b"") -> list[bytes]:
        lines: list[bytes] = []
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapError(f"{what!r}: {line[:200]!r}")
                return lines
            lines.append(line)

    def login(self, user: str, password: str) -> None:
        self.command(f'LOGIN "{user}" "{password}"')

    def authenticate_plain(self, user: str, password: str) -> None:
        """AUTHENTICATE PLAIN with SASL-IR (RFC 4959): one round trip, like LOGIN."""
        import base64

        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.command(f"AUTHENTICATE PLAIN {blob}")

    def compress(self) -> None:
        self.command("COMPRESS DEFLATE")
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)

    def idle(self) -> bytes:
        """Start IDLE; return its tag once the server said ``+``."""
        tag = self.next_tag()
        self.send(tag + b" IDLE\r\n")
        while not self.readline().startswith(b"+"):
            pass
        self._idle_tag = tag
        return tag

    def done(self) -> list[bytes]:
        self.send(b"DONE\r\n")
        return self.until_tagged(self._idle_tag, b"IDLE")

    def wait_for(self, needle: bytes, timeout: float) -> bytes:
        """Read lines until one contains ``needle``."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.01, deadline - time.monotonic()))
            if needle in line:
                return line

    def logout(self) -> None:
        with contextlib.suppress(ImapError, OSError):
            self.command("LOGOUT")
        self.close()
