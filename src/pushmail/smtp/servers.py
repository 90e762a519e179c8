"""Starting the SMTP, submission and LMTP listeners on the running event loop.

aiosmtpd's ``Controller`` runs its own loop in a thread; pushmail instead creates the
listeners with ``loop.create_server`` on the server's one loop, so SMTP sessions,
IMAP sessions and the event bus share it and nothing crosses threads but store jobs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pushmail.auth.guard import GuardSettings, LoginGuard
from pushmail.config import Config, Endpoint
from pushmail.events.interfaces import Publisher
from pushmail.metrics.series import CONNECTS
from pushmail.smtp.delivery_port import LocalDelivery
from pushmail.smtp.handlers import IngressHandler, IngressPolicy, Mode, SubmissionHandler
from pushmail.smtp.protocol import ConnectionSet, PushmailLMTP, PushmailSMTP
from pushmail.smtp.socketmap import SocketmapServer
from pushmail.threads.store_runner import StoreRunner
from pushmail.transport.conncap import ConnectionGate, Refuser

__all__ = ["SmtpListener", "start_smtp_servers"]

log = logging.getLogger(__name__)

IDENT = "pushmail"  # the greeting's software name; no version, nothing to fingerprint

_TOO_MANY = b"421 4.3.2 too many connections, try again later\r\n"


class _Connections(Protocol):
    def close_all(self) -> None: ...

    def __len__(self) -> int: ...  # connections holding a descriptor (the worker's cap)


@dataclass(slots=True)
class SmtpListener:
    """One listening socket and its open connections.

    ``close()`` stops accepting and drops open connections at once; ``aclose()``
    does the same and waits until the listening socket is closed.
    """

    name: str  # "smtp", "submission", "lmtp", "lmtp-unix" or "socketmap"
    server: asyncio.Server
    connections: _Connections = field(default_factory=ConnectionSet)

    @property
    def address(self) -> tuple[str, int] | str:
        """Where it listens (host, port) or the socket path, e.g. to find port 0."""
        sockname = self.server.sockets[0].getsockname()
        return sockname if isinstance(sockname, str) else (sockname[0], sockname[1])

    def close(self) -> None:
        self.server.close()
        self.connections.close_all()

    async def aclose(self) -> None:
        self.close()
        await self.server.wait_closed()


async def start_smtp_servers(
    config: Config,
    runner: StoreRunner,
    publisher: Publisher,
    tls: ssl.SSLContext,
    reuse_port: bool = False,
    unix_sockets: bool = True,
    guard: LoginGuard | None = None,
    gate: ConnectionGate | None = None,
) -> list[SmtpListener]:
    """Listen for SMTP (MX), submission and LMTP on every endpoint of ``config`` that
    is set, plus LMTP on ``config.lmtp_socket`` if set. If one listener fails to start,
    those already started are closed and the error propagates.

    With several worker processes each one listens with ``reuse_port`` (the kernel
    spreads connections), and only one serves the Unix socket (``unix_sockets``)."""
    delivery = LocalDelivery(runner, publisher, config.hostname, config.domains)
    guard = guard or LoginGuard(GuardSettings.from_limits(config.limits))
    started: list[SmtpListener] = []
    plan: list[tuple[str, Mode, Endpoint | Path]] = []
    if config.smtp is not None:
        plan.append(("smtp", "mx", config.smtp))
    if config.submission is not None:
        plan.append(("submission", "submission", config.submission))
    if config.lmtp is not None:
        plan.append(("lmtp", "lmtp", config.lmtp))
    if config.lmtp_socket is not None and unix_sockets:
        plan.append(("lmtp-unix", "lmtp", config.lmtp_socket))
    if plan and config.postmaster is None:
        log.warning(
            "no postmaster address is configured: mail for postmaster@<local domain> is "
            "refused, although RFC 5321 4.5.1 requires it to be accepted (set postmaster)"
        )
    try:
        for name, mode, where in plan:
            started.append(
                await _start_one(name, mode, where, config, delivery, guard, tls, reuse_port, gate)
            )
            log.info("%s listening on %s", name, _shown(started[-1].address))
        if config.socketmap is not None:  # recipient look-ups for Postfix (smtp/socketmap.py)
            socketmap = SocketmapServer(delivery, config.postmaster)
            await socketmap.start(config.socketmap, reuse_port)
            started.append(SmtpListener("socketmap", socketmap.server, socketmap))
            log.info("socketmap listening on %s", _shown(started[-1].address))
    except BaseException:
        for listener in started:
            await listener.aclose()
        raise
    return started


def _shown(address: tuple[str, int] | str) -> str:
    """An address for the log: the port chosen for port 0, IPv6 in brackets."""
    if isinstance(address, str):
        return address
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _start_one(
    name: str,
    mode: Mode,
    where: Endpoint | Path,
    config: Config,
    delivery: LocalDelivery,
    guard: LoginGuard,
    tls: ssl.SSLContext,
    reuse_port: bool = False,
    gate: ConnectionGate | None = None,
) -> SmtpListener:
    loop = asyncio.get_running_loop()
    policy = IngressPolicy(
        mode=mode,
        hostname=config.hostname,
        max_login_failures=config.limits.max_auth_failures,
        login_failure_delay=config.limits.auth_failure_delay,
        default_domain=config.default_domain,
        postmaster=config.postmaster,
    )
    handler = (
        SubmissionHandler(policy, delivery, guard)
        if mode == "submission"
        else IngressHandler(policy, delivery)
    )
    connections = ConnectionSet()
    factory = _protocol_factory(mode, handler, connections, config, tls, loop, gate)
    if isinstance(where, Path):
        if where.is_socket():
            where.unlink()  # a stale socket from an earlier run
        server = await loop.create_unix_server(factory, str(where))
    else:
        server = await loop.create_server(
            factory, where.host, where.port, reuse_address=True, reuse_port=reuse_port or None
        )
    return SmtpListener(name, server, connections)


def _protocol_factory(
    mode: Mode,
    handler: IngressHandler,
    connections: ConnectionSet,
    config: Config,
    tls: ssl.SSLContext,
    loop: asyncio.AbstractEventLoop,
    gate: ConnectionGate | None = None,
) -> Callable[[], asyncio.Protocol]:
    service = mode  # "mx", "submission" or "lmtp", as the security log names them
    connects = CONNECTS[service]

    def make() -> asyncio.Protocol:
        # Descriptors are shared with IMAP: over the worker's cap, 421 and close.
        if gate is not None and gate.full():
            return Refuser(gate, service, _TOO_MANY)
        connects.inc()
        if mode == "lmtp":
            return PushmailLMTP(
                handler,
                connections=connections,
                data_size_limit=config.limits.max_message,
                hostname=config.hostname,
                ident=IDENT,
                tls_context=tls,
                auth_exclude_mechanism=["PLAIN", "LOGIN"],
                loop=loop,
            )
        submission = mode == "submission"
        return PushmailSMTP(
            handler,
            connections=connections,
            data_size_limit=config.limits.max_message,
            hostname=config.hostname,
            ident=IDENT,
            tls_context=tls,
            require_starttls=submission,
            auth_required=submission,
            auth_exclude_mechanism=[] if submission else ["PLAIN", "LOGIN"],
            loop=loop,
            prelogin_timeout=config.limits.prelogin_timeout if submission else 0.0,
        )

    return make


class _QuietLoginDataWarning(logging.Filter):
    """aiosmtpd logs a deprecation warning of its own API on every successful AUTH;
    it is noise in an operator's log, so it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in str(record.msg)


logging.getLogger("mail.log").addFilter(_QuietLoginDataWarning())
