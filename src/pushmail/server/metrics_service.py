"""What a serving process starts for metrics, in one call from ``server/serve.py``.

Every worker samples its sessions and loop lag and records its listeners; worker 0
also answers scrapes (``listener.py``) and ``pushmail status`` (``status.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pushmail import __version__
from pushmail.config import Config
from pushmail.metrics.exposition import summary
from pushmail.metrics.listener import Limited, close_server, start_listener
from pushmail.metrics.sampler import Sampler, SessionCounts
from pushmail.metrics.series import BUILD, LISTENERS
from pushmail.metrics.status import socket_path, start_status

if TYPE_CHECKING:
    from pushmail.net.imap_conn import ImapContext
    from pushmail.server.push_service import PushService
    from pushmail.smtp.servers import SmtpListener
    from pushmail.transport.acceptor import Acceptor

log = logging.getLogger("pushmail.metrics")


@dataclass
class MetricsService:
    sampler: asyncio.Task[None]
    limited: Limited
    servers: list[asyncio.Server] = field(default_factory=list)
    status_path: Path | None = None

    async def aclose(self) -> None:
        self.sampler.cancel()
        for server in self.servers:
            await close_server(server)
        if self.status_path is not None:
            with contextlib.suppress(OSError):
                self.status_path.unlink()
        self.limited.close()


def _shown(address: object) -> str:
    if isinstance(address, str):
        return address  # a Unix socket
    host, port = address[:2]  # type: ignore[index]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listeners(
    config: Config, imap: Sequence[Acceptor], smtp: Sequence[SmtpListener], push: PushService
) -> list[tuple[str, str]]:
    """(service, address) of this worker's listening sockets; IMAP's acceptors are
    in the order ``server/serve.py`` starts them: plain, then implicit TLS."""
    names = [n for n, ep in (("imap", config.imap), ("imaps", config.imaps)) if ep is not None]
    out = [
        (name, _shown(sock.getsockname()))
        for name, acceptor in zip(names, imap, strict=False)
        for sock in acceptor.sockets
    ]
    out += [(s.name, _shown(s.address)) for s in smtp]
    http = config.push.http
    if push.http_port is not None and http is not None:
        out.append(("http", _shown((http.host, push.http_port))))
    return out


def _counts(ctx: ImapContext) -> SessionCounts:
    hib = ctx.hibernator
    hibernated = len(hib) if hib is not None else 0
    # The hub holds every idler, the hibernated records too (no pass over them all).
    idling = max(0, ctx.hub.count() - hibernated)
    gate = ctx.gate
    return SessionCounts(
        active=max(0, len(ctx.connections) - idling),
        idling=idling,
        hibernated=hibernated,
        connections=gate.open_connections() if gate is not None else len(ctx.connections),
    )


async def start_metrics(
    config: Config,
    ctx: ImapContext,
    worker: int,
    imap: Sequence[Acceptor],
    smtp: Sequence[SmtpListener],
    push: PushService,
) -> MetricsService:
    sampler = Sampler(worker, lambda: _counts(ctx))
    service = MetricsService(asyncio.ensure_future(sampler.run()), Limited())
    BUILD.labels(__version__).set(1)
    found = _listeners(config, imap, smtp, push)
    if worker == 0:
        limited = service.limited

        async def status() -> bytes:
            return await limited.build(lambda: json.dumps(summary()).encode() + b"\n")

        if config.metrics is not None:
            server = await start_listener(config.metrics, limited)
            if server is not None:
                service.servers.append(server)
                found += [("metrics", _shown(s.getsockname())) for s in server.sockets]
        try:
            service.servers.append(await start_status(config.data_dir, status, limited))
            service.status_path = socket_path(config.data_dir)
        except OSError as e:
            log.error("pushmail status NOT available: %s", e)
    for name, address in found:
        LISTENERS.labels(name, address).set(1)
    return service
