"""aiosmtpd's SMTP and LMTP protocols with pushmail's DATA command.

Only DATA is replaced (see ``smtp.data`` for why): the rest of the dialogue is
aiosmtpd's, steered by the handler's hooks. The handler decides what to do with a
complete message and returns its replies: one for SMTP, one per accepted recipient
for LMTP (RFC 2033 §4.2), in RCPT order.

Each protocol object also registers itself with the listener that made it, so that
closing a listener closes its open connections too (``asyncio.Server.close`` alone
leaves them running).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol, cast

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from pushmail import seclog
from pushmail.smtp.address import simple_path
from pushmail.smtp.data import MAX_LINE, DataError, read_data

__all__ = ["ConnectionSet", "DataSink", "PushmailLMTP", "PushmailSMTP"]

log = logging.getLogger(__name__)


class DataSink(Protocol):
    """What the handler offers the DATA command."""

    def message_received(
        self, server: SMTP, session: Session, envelope: Envelope, content: bytes
    ) -> Awaitable[list[str]]:
        """Deliver ``content``; return the replies to send, already formatted."""
        ...

    def data_refused(self, server: SMTP, envelope: Envelope, error: DataError) -> list[str]:
        """The replies for a DATA section refused by the reader."""
        ...


class ConnectionSet:
    """The open connections of one listener."""

    def __init__(self) -> None:
        self.open: set[SMTP] = set()

    def __len__(self) -> int:
        return len(self.open)

    def close_all(self) -> None:
        for proto in list(self.open):
            transport = proto.transport
            if transport is not None:
                transport.close()


async def _data_command(server: SMTP, arg: str | None) -> None:
    """DATA, with the preconditions of RFC 5321 §4.1.1.4 checked as aiosmtpd does."""
    if await server.check_helo_needed():
        return
    if await server.check_auth_needed("DATA"):
        return
    envelope = server.envelope
    assert envelope is not None and server.session is not None
    if not envelope.rcpt_tos:
        await server.push("503 5.5.1 Error: need RCPT command")
        return
    if arg:
        await server.push("501 5.5.4 Syntax: DATA")
        return
    await server.push("354 End data with <CR><LF>.<CR><LF>")
    result = await read_data(server._reader, server.data_size_limit)
    if result.closed:
        return
    sink: DataSink = server.event_handler
    if result.error is not None:
        replies = sink.data_refused(server, envelope, result.error)
    else:
        envelope.content = envelope.original_content = result.content
        replies = await sink.message_received(server, server.session, envelope, result.content)
    server.envelope = server._create_envelope()  # aiosmtpd's post-DATA state
    for reply in replies:
        await server.push(reply)


def _getaddr(server: SMTP, arg: str) -> tuple[str | None, str | None]:
    """aiosmtpd's path reader, with the plain ``<local@domain>`` case read fast."""
    simple = simple_path(arg)
    if simple is None:
        return SMTP._getaddr(server, arg)
    local_part = simple[0].rpartition("@")[0]
    if server.local_part_limit and len(local_part) > server.local_part_limit:
        return None, None
    return simple


class PushmailSMTP(SMTP):
    """SMTP (MX and submission) with the strict DATA reader."""

    # aiosmtpd's StreamReader limit: DATA lines up to MAX_LINE (smtp/data.py). Command
    # lines are still refused above ``command_size_limit``, once read.
    line_length_limit = MAX_LINE
    failed_logins = 0  # per connection; the handler disconnects after too many

    def __init__(
        self,
        handler: Any,
        *,
        connections: ConnectionSet,
        prelogin_timeout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._connections = connections
        connections.open.add(self)
        # Submission: seconds from connecting to AUTH, not reset by anything the
        # client sends (aiosmtpd's own timeout is reset by every line).
        self._prelogin_timeout = prelogin_timeout
        self._login_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._prelogin_timeout > 0 and self._login_deadline is None:
            self._login_deadline = self.loop.call_later(self._prelogin_timeout, self._login_late)

    def _login_late(self) -> None:
        transport = self.transport
        if self.session is None or self.session.authenticated or transport is None:
            return
        client = peer_ip(self) or "unknown"
        seclog.report("prelogin-timeout", "submission", client, timeout=int(self._prelogin_timeout))
        cast(asyncio.WriteTransport, transport).write(b"421 4.4.2 no login in time\r\n")
        transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.open.discard(self)
        if self._login_deadline is not None:
            self._login_deadline.cancel()
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        await _data_command(self, arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        return _getaddr(self, arg)


class PushmailLMTP(LMTP):
    """LMTP (RFC 2033): LHLO instead of EHLO, and one DATA reply per recipient."""

    line_length_limit = MAX_LINE

    def __init__(self, handler: Any, *, connections: ConnectionSet, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._connections = connections
        connections.open.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.open.discard(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        await _data_command(self, arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        return _getaddr(self, arg)


def is_lmtp(server: SMTP) -> bool:
    return isinstance(server, LMTP)


def peer_ip(server: SMTP) -> str | None:
    """The peer's IP address, or None on a Unix socket."""
    peer = server.session.peer if server.session is not None else None
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


def uses_tls(server: SMTP) -> bool:
    """True after STARTTLS (or on an implicit-TLS transport)."""
    if server.session is not None and server.session.ssl is not None:
        return True
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def close_soon(server: SMTP) -> None:
    """Drop the connection (after the reply already queued has been written)."""
    if server.transport is not None:
        server.transport.close()
