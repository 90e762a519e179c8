"""One IMAP connection of the push client: the thin driver around ``ResponseReader``.

Every await on the network has a deadline (``asyncio.timeout``): connect, TLS, each
read, each write (drain) and LOGOUT. When one passes, the transport is *aborted*, never
closed gracefully: a graceful close on a black-holed link would wait for a FIN that
never comes. The one read without its own deadline is the wait for IDLE news; that
wait is bounded by the coalesced ``Heartbeat``, which aborts the connection when the
server has been silent for too long.

Errors are sorted by what the reconnect logic should do about them:
``ConnectionLost`` (network, timeouts, garbage: retry soon), ``AuthFailed`` (stop and
say so), ``CertificateRejected`` (a kind of ``AuthFailed``: the server's certificate is
not trusted, which no retry can change), ``ServerBusy`` (connection limits: back off
longer), ``CommandFailed`` (a NO or BAD to one command).

Trust: the system's CA store by default; ``ca_file`` replaces it (pushmail's own
self-signed certificate is its own CA); a ``tls_fingerprint`` pin replaces chain and
name checks by comparing the SHA-256 of the certificate the server presents.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from pushmail.client.response import (
    Continuation,
    Response,
    ResponseError,
    ResponseReader,
    Tagged,
    Untagged,
    Value,
    count_uids,
    status_values,
)
from pushmail.imap.client_encode import encode_command
from pushmail.imap.commands import Command
from pushmail.imap.errors import ProtocolError
from pushmail.imap.mutf7 import decode_mutf7

__all__ = [
    "AuthFailed",
    "CertificateRejected",
    "ClientError",
    "CommandFailed",
    "ConnectionLost",
    "Counters",
    "Endpoint",
    "ImapClient",
    "ServerBusy",
    "format_fingerprint",
    "normalize_fingerprint",
    "server_certificate",
]

_READ_SIZE = 65536
# Response codes and texts that mean "too many connections" rather than "wrong password".
_BUSY_CODES = frozenset({"LIMIT", "UNAVAILABLE", "INUSE"})
_BUSY_WORDS = ("too many", "connection limit", "maximum number")


class ClientError(Exception):
    """Base of the client's errors."""


class ConnectionLost(ClientError):
    """The link broke, timed out or carried garbage: reconnect soon."""


class AuthFailed(ClientError):
    """The server refused the credentials: retrying would only lock the account."""


class CertificateRejected(AuthFailed):
    """The server's certificate failed verification or its pin: retrying cannot help
    until the configuration changes, so the account stops as after a refused login."""

    event = "certificate_rejected"


class ServerBusy(ClientError):
    """The server refused for load or connection limits: back off longer."""


class CommandFailed(ClientError):
    def __init__(self, tagged: Tagged) -> None:
        super().__init__(f"{tagged.status} {tagged.text}")
        self.tagged = tagged


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: str = "none"  # "none", "tls" (implicit, RFC 8314) or "starttls"
    verify: bool = True
    ca_file: Path | None = None  # trust only this CA bundle (else the system's)
    fingerprint: str = ""  # normalized SHA-256 pin (64 hex digits); replaces CA checks


class Counters:
    """What the watcher did, for the status line and the cost benchmark."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "keepalives",
        "notified",
        "pushed",
        "qresync",
        "reconnects",
        "renewals",
        "vanished",
    )

    def __init__(self) -> None:
        self.bytes_in = self.bytes_out = 0
        self.keepalives = self.reconnects = self.renewals = self.notified = 0
        self.pushed = 0  # new messages taken from a NOTIFY push, nothing fetched
        self.qresync = 0  # folders resynced by a QRESYNC EXAMINE (RFC 7162 §3.2.5)
        self.vanished = 0  # UIDs those reported expunged while we were away

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def set_keepalive(sock: socket.socket, idle: float) -> None:
    """TCP keepalive probes after ``idle`` seconds of silence (below NAT timeouts)."""
    if idle <= 0:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle / 4))):
        opt = getattr(socket, name, None)
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, max(1, int(value)))
    if hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)


def _tls_context(ep: Endpoint) -> ssl.SSLContext:
    if ep.verify and not ep.fingerprint and ep.ca_file is not None:
        try:
            return ssl.create_default_context(cafile=str(ep.ca_file))
        except (OSError, ssl.SSLError) as e:  # unreadable or not PEM: a config error
            raise CertificateRejected(f"cannot load ca_file {ep.ca_file}: {e}") from e
    ctx = ssl.create_default_context()
    if not ep.verify or ep.fingerprint:
        # A pin is checked after the handshake (``_check_pin``), against the exact
        # certificate; a self-signed one would fail the chain check first.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def normalize_fingerprint(text: str) -> str:
    """``sha256:AB:CD:…`` (as ``pushmail watch fingerprint`` and ``openssl x509
    -fingerprint -sha256`` print it, any case, colons optional) → 64 lowercase hex
    digits; ValueError for anything else."""
    body = text.strip()
    if body.lower().startswith("sha256:"):
        body = body[7:]
    elif body.lower().startswith("sha256 fingerprint="):
        body = body[19:]
    hexdigits = body.replace(":", "").lower()
    if len(hexdigits) != 64 or any(c not in "0123456789abcdef" for c in hexdigits):
        raise ValueError("a SHA-256 fingerprint is 64 hex digits, e.g. sha256:AB:CD:…")
    return hexdigits


def format_fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def _peer_der(writer: asyncio.StreamWriter) -> bytes:
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        raise CertificateRejected("the server presented no certificate")
    return bytes(der)


def _check_pin(ep: Endpoint, writer: asyncio.StreamWriter) -> None:
    if not ep.fingerprint:
        return
    der = _peer_der(writer)
    if hashlib.sha256(der).hexdigest() != ep.fingerprint:
        raise CertificateRejected(
            f"certificate of {ep.host}:{ep.port} does not match tls_fingerprint: "
            f"it is {format_fingerprint(der)}"
        )


def _rejected(ep: Endpoint, e: ssl.SSLCertVerificationError) -> CertificateRejected:
    why = e.verify_message or str(e)
    return CertificateRejected(
        f"certificate of {ep.host}:{ep.port} not trusted ({why}); "
        "set ca_file or tls_fingerprint (see pushmail watch fingerprint)"
    )


class ImapClient:
    """An open IMAP connection; use ``open`` to make one."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        counters: Counters,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._responses = ResponseReader()
        self._queue: deque[Response] = deque()
        self._tags = (f"W{n}" for n in itertools.count(1))
        self.counters = counters
        self.timeout = timeout
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: frozenset[str] = frozenset()  # what ENABLE turned on (RFC 5161)
        self.last_heard = time.monotonic()
        self.closed = False
        self.news = False  # an EXISTS was seen since the watcher last looked
        self.exists = 0  # the selected folder's message count, as last reported
        # Folders a ``* STATUS`` named since the watcher last looked (NOTIFY, RFC 5465),
        # each with the values of its latest STATUS (UIDNEXT, UIDVALIDITY, ...).
        self.status_news: dict[str, dict[str, int]] = {}

    # -- opening --------------------------------------------------------------------
    @classmethod
    async def open(
        cls, ep: Endpoint, counters: Counters, timeout: float, keepalive: float = 0
    ) -> ImapClient:
        """Connect, read the greeting (and STARTTLS if asked); all within ``timeout``."""
        ctx = _tls_context(ep) if ep.tls != "none" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    ep.host, ep.port, ssl=ctx if ep.tls == "tls" else None
                )
        except ssl.SSLCertVerificationError as e:  # before OSError: it is one
            raise _rejected(ep, e) from e
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise ConnectionLost(f"connect to {ep.host}:{ep.port}: {e!r}") from e
        sock = writer.get_extra_info("socket")
        if sock is not None:
            set_keepalive(sock, keepalive)
        conn = cls(reader, writer, counters, timeout)
        try:
            if ep.tls == "tls":
                _check_pin(ep, writer)
            await conn._greeting()
            if ep.tls == "starttls":
                await conn._starttls(ep, ctx)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _greeting(self) -> None:
        greeting = await self.read(self.timeout)
        if not isinstance(greeting, Untagged) or greeting.keyword not in ("OK", "PREAUTH"):
            text = greeting.text if isinstance(greeting, Untagged) else ""
            if _is_busy(greeting.code if isinstance(greeting, Untagged) else None, text):
                raise ServerBusy(f"server refused the connection: {text}")
            raise ConnectionLost(f"unexpected greeting: {greeting}")
        self._note_capabilities(greeting)

    async def _starttls(self, ep: Endpoint, ctx: ssl.SSLContext | None) -> None:
        await self.command_text("STARTTLS")
        try:
            async with asyncio.timeout(self.timeout):
                await self._writer.start_tls(ctx or _tls_context(ep), server_hostname=ep.host)
        except ssl.SSLCertVerificationError as e:
            raise _rejected(ep, e) from e
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise ConnectionLost(f"STARTTLS: {e!r}") from e
        _check_pin(ep, self._writer)
        self.capabilities = frozenset()  # must be asked again (RFC 3501 §6.2.1)

    # -- reading --------------------------------------------------------------------
    async def read(self, timeout: float | None) -> Response:
        """The next response; ``timeout=None`` only where the Heartbeat guards."""
        while not self._queue:
            await self._receive(timeout, quiet=False)
        return self._queue.popleft()

    async def poll(self, timeout: float) -> Response | None:
        """The next response if one comes within ``timeout``, else None: unlike
        ``read``, a quiet link is not a dead one here (the heartbeat judges that)."""
        deadline = time.monotonic() + timeout
        while not self._queue:
            left = deadline - time.monotonic()
            if left <= 0 or not await self._receive(left, quiet=True):
                return None
        return self._queue.popleft()

    @property
    def buffered(self) -> bool:
        """Whether responses already read wait to be taken (no network wait)."""
        return bool(self._queue)

    async def _receive(self, timeout: float | None, quiet: bool) -> bool:
        """Read once from the socket into the queue; False if ``quiet`` and the
        timeout passed (a StreamReader read cancelled while waiting loses nothing)."""
        try:
            if timeout is None:
                data = await self._reader.read(_READ_SIZE)
            else:
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(_READ_SIZE)
        except TimeoutError as e:  # before OSError: it is one
            if quiet:
                return False
            self.abort()
            raise ConnectionLost(f"read: {e!r}") from e
        except (OSError, ssl.SSLError) as e:
            self.abort()
            raise ConnectionLost(f"read: {e!r}") from e
        if not data:
            self.abort()
            raise ConnectionLost("server closed the connection")
        self.counters.bytes_in += len(data)
        self.last_heard = time.monotonic()
        try:
            self._responses.feed(data)
            self._queue.extend(self._responses)
        except ResponseError as e:
            self.abort()
            raise ConnectionLost(f"garbage from server: {e}") from e
        return True

    # -- writing --------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionLost("connection already closed")
        self._writer.write(data)
        self.counters.bytes_out += len(data)
        try:
            async with asyncio.timeout(self.timeout):
                await self._writer.drain()
        except (OSError, TimeoutError) as e:
            self.abort()
            raise ConnectionLost(f"write: {e!r}") from e

    def write_now(self, data: bytes) -> None:
        """Queue bytes without waiting (DONE from the heartbeat); a stuck link is
        caught by the unanswered DONE's deadline, not here."""
        if not self.closed and not self._writer.transport.is_closing():
            self._writer.write(data)
            self.counters.bytes_out += len(data)

    def next_tag(self) -> str:
        return next(self._tags)

    async def command(
        self, cmd: Command, timeout: float | None = None
    ) -> tuple[list[Untagged], Tagged]:
        """Send ``cmd`` (made with ``next_tag()``) and collect everything up to its
        tagged OK. NO/BAD raise ``CommandFailed``; BYE raises ``ConnectionLost``."""
        await self.send(encode_command(cmd, literal_plus="LITERAL+" in self.capabilities))
        return await self.collect(cmd.tag, timeout)

    async def send_commands(self, *cmds: Command) -> None:
        """Several commands in one write (pipelined); ``collect`` each tag in order."""
        lp = "LITERAL+" in self.capabilities
        await self.send(b"".join(encode_command(cmd, literal_plus=lp) for cmd in cmds))

    async def command_text(self, text: str) -> tuple[list[Untagged], Tagged]:
        """A command with no arguments needing encoding (``NOOP``, ``STARTTLS``)."""
        tag = self.next_tag()
        await self.send(f"{tag} {text}\r\n".encode("ascii"))
        return await self.collect(tag)

    async def collect(
        self, tag: str, timeout: float | None = None
    ) -> tuple[list[Untagged], Tagged]:
        untagged: list[Untagged] = []
        while True:
            resp = await self.read(timeout or self.timeout)
            if isinstance(resp, Tagged):
                if resp.tag != tag:
                    continue  # a stale tag from an aborted exchange: ignore
                if resp.status != "OK":
                    raise CommandFailed(resp)
                self._note_capabilities(resp)
                return untagged, resp
            if isinstance(resp, Untagged):
                self.check_bye(resp)
                self.note_news(resp)
                if resp.keyword == "CAPABILITY":
                    self.capabilities = frozenset(str(v).upper() for v in resp.values)
                self._note_capabilities(resp)
                untagged.append(resp)

    def check_bye(self, resp: Untagged) -> None:
        if resp.keyword == "BYE":
            self.abort()
            if _is_busy(resp.code, resp.text):
                raise ServerBusy(f"server said BYE: {resp.text}")
            raise ConnectionLost(f"server said BYE: {resp.text}")

    def note_news(self, resp: Untagged) -> None:
        """New mail may have come: an EXISTS that arrives in the middle of another
        command's answer must not be lost just because that command ignores it."""
        if resp.keyword in ("EXISTS", "RECENT"):
            self.news = True
            if resp.keyword == "EXISTS" and resp.number is not None:
                self.exists = resp.number
        elif resp.keyword == "EXPUNGE":
            self.exists = max(0, self.exists - 1)
        elif resp.keyword == "VANISHED" and resp.values and resp.values[0] != ("EARLIER",):
            self.exists = max(0, self.exists - count_uids(resp.values[-1]))
        elif resp.keyword == "STATUS" and len(resp.values) >= 2:
            name = _mailbox_name(resp.values[0])
            if name is not None:
                try:
                    self.status_news[name] = status_values(resp.values[1])
                except ResponseError:  # unreadable values: the watcher EXAMINEs instead
                    self.status_news[name] = {}

    def _note_capabilities(self, resp: Untagged | Tagged) -> None:
        if resp.code == "CAPABILITY":
            self.capabilities = frozenset(str(v).upper() for v in resp.code_args)

    async def wait_continuation(self) -> list[Untagged]:
        """After IDLE: untagged data until ``+``; a tagged NO here means no IDLE."""
        early: list[Untagged] = []
        while True:
            resp = await self.read(self.timeout)
            if isinstance(resp, Continuation):
                return early
            if isinstance(resp, Tagged):
                raise CommandFailed(resp)
            self.check_bye(resp)
            self.note_news(resp)
            early.append(resp)

    # -- closing --------------------------------------------------------------------
    def abort(self) -> None:
        """Drop the connection at once: no FIN handshake to wait for."""
        if not self.closed:
            self.closed = True
            self._writer.transport.abort()
            self._writer.close()  # no-op on the aborted transport; marks the writer done

    async def logout(self, idling: bool = False) -> None:
        """LOGOUT politely (ending IDLE first), but never wait longer than one
        deadline for it."""
        if self.closed:
            return
        try:
            tag = self.next_tag()
            done = b"DONE\r\n" if idling else b""
            await self.send(done + f"{tag} LOGOUT\r\n".encode("ascii"))
            async with asyncio.timeout(self.timeout):
                while True:
                    resp = await self.read(None)
                    if isinstance(resp, Tagged) and resp.tag == tag:
                        break
        except (ClientError, TimeoutError):
            pass
        finally:
            self.abort()


async def server_certificate(ep: Endpoint, timeout: float) -> bytes:
    """The DER certificate the server presents (unverified: this is how one finds
    out what to pin), over implicit TLS or after STARTTLS."""
    unchecked = Endpoint(ep.host, ep.port, ep.tls, verify=False)
    conn = await ImapClient.open(unchecked, Counters(), timeout)
    try:
        return _peer_der(conn._writer)
    finally:
        await conn.logout()


def _mailbox_name(value: Value) -> str | None:
    """A mailbox name from a response (atom, quoted or literal; modified UTF-7);
    None for something that is not a name, which the watcher then ignores."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    if value.upper() == "INBOX":
        return "INBOX"
    try:
        return decode_mutf7(value)
    except ProtocolError:
        return value  # UTF8=ACCEPT servers send UTF-8 names as they are


def _is_busy(code: str | None, text: str) -> bool:
    lowered = text.lower()
    return code in _BUSY_CODES or any(w in lowered for w in _BUSY_WORDS)


def classify_login_failure(tagged: Tagged) -> ClientError:
    """A NO to LOGIN: a connection limit (back off) or bad credentials (stop)."""
    if _is_busy(tagged.code, tagged.text):
        return ServerBusy(f"login refused: {tagged.text}")
    if tagged.code in ("UNAVAILABLE", "SERVERBUG") or tagged.status == "BAD":
        return ConnectionLost(f"login failed: {tagged.text}")
    return AuthFailed(f"login refused: {tagged.text}")
