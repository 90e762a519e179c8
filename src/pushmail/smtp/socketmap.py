"""A Postfix socketmap service (``socketmap_table(5)``): lets an MTA in front ask, live
and during its own SMTP conversation, whether a recipient exists here.

Without it Postfix accepts mail for any address in a local domain, learns that the
user is unknown only when LMTP answers after DATA, and then bounces to the envelope
sender, who is often forged (backscatter). With ``virtual_mailbox_maps =
socketmap:inet:127.0.0.1:PORT:mailbox`` Postfix refuses unknown users at RCPT.

The protocol: each request is a netstring ``<len>:<name> <key>,``; each reply a
netstring ``OK <value>``, ``NOTFOUND ``, ``TEMP <reason>`` or ``PERM <reason>``. Postfix
keeps a connection open for many requests and reads the replies in order, so one
connection is served one request at a time.

Maps:

* ``mailbox``: a recipient address; OK with the user's address when it resolves as
  RCPT TO would (``user+tag@domain``, case, and whatever else ``LocalDelivery.resolve``
  honours), NOTFOUND otherwise. Keys without a local part (Postfix also asks
  ``@domain``) are NOTFOUND: there are no catch-alls. ``postmaster@<local domain>``
  is OK with the ``postmaster`` address when that is set (RFC 5321 §4.5.1).
* ``domain``: a domain; OK when it is local (configured, or a user exists in it).

A store error is TEMP, so Postfix answers 451 and the sender retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pushmail.config import Endpoint
from pushmail.smtp.delivery_port import LocalDelivery

__all__ = ["MAX_REQUEST", "SocketmapServer", "decode_netstring", "encode_netstring"]

log = logging.getLogger(__name__)

# A request is a map name and an address (at most 254 octets by RFC 5321, longer keys
# are answered NOTFOUND): nothing legitimate comes near this, and nothing more is
# buffered from a peer.
MAX_REQUEST = 1024
IDLE_TIMEOUT = 600.0  # seconds; Postfix closes idle map connections far sooner
MAX_CONNECTIONS = 256  # Postfix opens one per process that uses the map
MAX_ADDRESS = 254


class NetstringError(ValueError):
    """The peer sent something that is not a netstring within MAX_REQUEST."""


def encode_netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


async def decode_netstring(reader: asyncio.StreamReader) -> bytes | None:
    """One netstring's payload, or None at a clean end of stream."""
    digits = b""
    while True:
        c = await reader.read(1)
        if not c:
            if digits:
                raise NetstringError("connection closed inside a netstring")
            return None
        if c == b":":
            break
        if not c.isdigit() or len(digits) >= len(str(MAX_REQUEST)):
            raise NetstringError("bad netstring length")
        digits += c
    if not digits or int(digits) > MAX_REQUEST:
        raise NetstringError("netstring length missing or above the limit")
    payload = await reader.readexactly(int(digits) + 1)
    if payload[-1:] != b",":
        raise NetstringError("netstring not terminated by ','")
    return payload[:-1]


class SocketmapServer:
    """The listener: ``start`` binds it; ``server`` is the listening socket and
    ``close_all`` drops open connections (the shape ``SmtpListener`` wants)."""

    def __init__(self, delivery: LocalDelivery, postmaster: str | None = None) -> None:
        self._delivery = delivery
        self._postmaster = postmaster  # the ``postmaster`` setting
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, where: Endpoint, reuse_port: bool = False) -> None:
        self._server = await asyncio.start_server(
            self._serve,
            where.host,
            where.port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            limit=MAX_REQUEST + 16,
        )

    @property
    def server(self) -> asyncio.Server:
        assert self._server is not None, "start() first"
        return self._server

    def __len__(self) -> int:
        return len(self._writers)

    def close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._writers.add(writer)
        try:
            while True:
                request = await asyncio.wait_for(decode_netstring(reader), IDLE_TIMEOUT)
                if request is None:
                    break
                writer.write(encode_netstring(await self.answer(request)))
                await writer.drain()
        except (NetstringError, asyncio.IncompleteReadError, TimeoutError) as e:
            log.debug("socketmap connection dropped: %s", e)
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, request: bytes) -> bytes:
        """The reply payload for one request payload."""
        name, _, key = request.decode("utf-8", "replace").partition(" ")
        key = key.strip()
        try:
            if name == "mailbox":
                return await self._mailbox(key)
            if name == "domain":
                ok = bool(key) and await self._delivery.is_local_domain(key)
                return b"OK " + key.lower().encode() if ok else b"NOTFOUND "
        except Exception:
            log.exception("store error in socketmap lookup %r", key)
            return b"TEMP store unavailable"
        return b"PERM unknown map name; use mailbox or domain"

    async def _mailbox(self, key: str) -> bytes:
        local, at, domain = key.rpartition("@")
        if not at or not local or not domain or len(key) > MAX_ADDRESS:
            return b"NOTFOUND "
        user = await self._delivery.resolve(key)
        # RFC 5321 §4.5.1, as RCPT TO answers it (smtp/handlers.py): postmaster of
        # every local domain goes to the configured address.
        postmaster = user is None and self._postmaster and local.lower() == "postmaster"
        if postmaster and self._postmaster and await self._delivery.is_local_domain(domain):
            user = await self._delivery.resolve(self._postmaster)
        if user is None:
            return b"NOTFOUND "
        return b"OK " + user.address.encode()
