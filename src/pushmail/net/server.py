"""``pushmail serve``: starts every listener in one event loop and stops them cleanly.

One process for now; the listeners, the store thread, the change bus and the IDLE hub
are built here and handed down, so each layer below stays unaware of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pushmail import __version__
from pushmail.auth.passwords import hash_password
from pushmail.config import Config, Endpoint
from pushmail.events.unixsock import UnixSocketBus
from pushmail.imap.session import ServerInfo
from pushmail.net.idle_hub import IdleHub
from pushmail.net.imap_conn import ImapConnection, ImapContext
from pushmail.net.storethread import StoreRunner
from pushmail.net.tls import ensure_certificate, server_context
from pushmail.smtp.servers import start_smtp_servers
from pushmail.store.sqlite import SqliteStore

log = logging.getLogger("pushmail")

# How often the housekeeping sweep runs: keepalives, autologout, re-checks.
SWEEP_SECONDS = 5.0


class Housekeeper:
    """One timer for all connections (not one per connection): sends keepalives to
    idlers, logs out the inactive, and re-checks idlers against the store so a lost
    hint is repaired within ``recheck_interval``."""

    def __init__(self, ctx: ImapContext, config: Config) -> None:
        self._ctx = ctx
        self._settings = config.imap_settings
        self._last_recheck: dict[ImapConnection, float] = {}

    def sweep(self) -> None:
        now = time.monotonic()
        s = self._settings
        for conn in list(self._ctx.connections):
            if now - conn.last_activity > s.autologout:
                conn.close(b"* BYE autologout; idle for too long\r\n")
                continue
            if not conn.idling:
                continue
            if s.idle_keepalive and now - conn.last_write >= s.idle_keepalive:
                conn.keepalive()
            last = self._last_recheck.get(conn, 0.0)
            if s.recheck_interval and now - last >= s.recheck_interval:
                self._last_recheck[conn] = now
                if last:
                    conn.wake()
        for conn in [c for c in self._last_recheck if c not in self._ctx.connections]:
            del self._last_recheck[conn]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()


async def _listen(ctx: ImapContext, ep: Endpoint, tls: bool) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: ImapConnection(ctx, secure=tls),
        ep.host,
        ep.port,
        ssl=ctx.tls if tls else None,
        reuse_address=True,
        backlog=4096,
    )


async def serve(config: Config, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or until the task is cancelled)."""
    loop = asyncio.get_running_loop()
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if config.tls_cert and config.tls_key:
        cert, key = config.tls_cert, config.tls_key
    else:
        cert, key = ensure_certificate(data_dir, config.hostname)
    tls = server_context(cert, key)
    runner = StoreRunner(lambda: SqliteStore(config.db_path))
    await runner.run(lambda st: None)  # open (and migrate) the store before listening
    bus = UnixSocketBus(config.events_dir)
    bus.start(loop)
    ctx = ImapContext(
        info=ServerInfo(config.hostname, True, __version__),
        runner=runner,
        hub=IdleHub(bus, loop),
        publisher=bus,
        limits=config.limits,
        tls=tls,
        auth_pool=ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth"),
        connections=set(),
        dummy_hash=hash_password("not a real password"),
    )
    servers = []
    for ep, is_tls in ((config.imap, False), (config.imaps, True)):
        if ep is not None:
            servers.append(await _listen(ctx, ep, is_tls))
            log.info("IMAP%s listening on %s", "S" if is_tls else "", ep)
    smtp = await start_smtp_servers(config, runner, bus, tls)
    housekeeper = asyncio.ensure_future(Housekeeper(ctx, config).run())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        housekeeper.cancel()
        for srv in servers:
            srv.close()
        for conn in list(ctx.connections):
            conn.close(b"* BYE server shutting down\r\n")
        for s in smtp:
            await s.aclose()
        for srv in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 2)
        bus.close()
        ctx.auth_pool.shutdown(wait=False)
        runner.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
