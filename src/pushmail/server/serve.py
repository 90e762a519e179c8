"""``pushmail serve``: starts every listener in one event loop and stops them cleanly.

One serving process (with ``--workers``, one of several: ``supervisor/workers.py``); the
listeners, the store thread, the change bus and the IDLE hub are built here
and handed down, so each layer below stays unaware of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pushmail import __version__, seclog
from pushmail.auth.guard import GuardSettings, LoginGuard
from pushmail.auth.passwords import hash_password
from pushmail.config import Config, Endpoint, ImapSettings
from pushmail.events.factory import open_bus
from pushmail.events.interfaces import ServerBus
from pushmail.imap.connection import (
    BYE_AUTOLOGOUT,
    BYE_NO_LOGIN,
    BYE_PER_ADDRESS,
    BYE_SHUTDOWN,
    BYE_TOO_MANY,
)
from pushmail.imap.session import ServerInfo
from pushmail.net.hibernate import Hibernator
from pushmail.net.homes import HomeLinks, Homes
from pushmail.net.idle_hub import IdleHub
from pushmail.net.imap_conn import ImapConnection, ImapContext
from pushmail.net.keepalive import keepalive_due
from pushmail.server.loop_stats import LoopStats
from pushmail.server.metrics_service import start_metrics
from pushmail.server.push_service import start_push
from pushmail.smtp.servers import SmtpListener, start_smtp_servers
from pushmail.store.factory import open_store
from pushmail.store.interfaces import Store, StoreUnavailable
from pushmail.threads.store_runner import StoreRunner
from pushmail.transport import tls_keylog, tls_layer
from pushmail.transport.acceptor import Acceptor, listening_sockets
from pushmail.transport.conncap import ConnectionGate, ExhaustionLog, descriptor_cap
from pushmail.transport.tls import ensure_certificate, server_context
from pushmail.transport.tls_layer import TlsLayer

log = logging.getLogger("pushmail")

# How often the housekeeping sweep runs: keepalives, autologout, re-checks.
SWEEP_SECONDS = 5.0
# How often expunge records older than expunge_memory_days are forgotten.
PRUNE_SECONDS = 6 * 3600.0


def sweep_seconds(settings: ImapSettings) -> float:
    """The sweep period: SWEEP_SECONDS, or a quarter of the keepalive interval or
    half the autologout when shorter, so short intervals (tests, aggressive NATs) are
    honoured closely."""
    parts = [settings.idle_keepalive / 4] if settings.idle_keepalive > 0 else []
    if settings.autologout > 0:
        parts.append(settings.autologout / 2)
    return max(0.05, min([SWEEP_SECONDS, *parts]))


class Housekeeper:
    """One timer for all connections (not one per connection): sends keepalives to
    idlers, logs out the inactive, and re-checks idlers against the store so a lost
    hint is repaired within ``recheck_interval``."""

    def __init__(self, ctx: ImapContext, config: Config) -> None:
        self._ctx = ctx
        self._settings = config.imap_settings
        self._last_recheck: dict[ImapConnection, float] = {}
        # Hibernated sessions are re-checked a share of mailboxes per sweep, so
        # each mailbox comes round once per recheck_interval.
        self._period = sweep_seconds(self._settings)
        self._shares = max(1, int(self._settings.recheck_interval / self._period))
        self._share = 0

    def sweep(self) -> None:
        now, wall = time.monotonic(), time.time()
        offset = wall - now
        s = self._settings
        self._expire_prelogin(now)
        h = self._ctx.hibernator
        if h is not None:
            h.sweep(now, s.idle_keepalive, s.autologout, wall)

        for conn in list(self._ctx.connections):
            if now - conn.last_activity > s.autologout:
                conn.close(BYE_AUTOLOGOUT)
                continue
            user = conn.session.user
            if not conn.idling or user is None:
                continue
            ka = s.idle_keepalive
            if ka and wall >= keepalive_due(conn.last_write + offset, user.id, ka):
                conn.keepalive()
            last = self._last_recheck.get(conn, 0.0)
            if s.recheck_interval and now - last >= s.recheck_interval:
                self._last_recheck[conn] = now
                if last:
                    conn.wake()
        for conn in [c for c in self._last_recheck if c not in self._ctx.connections]:
            del self._last_recheck[conn]

    def _expire_prelogin(self, now: float) -> None:
        """Close connections that have not logged in within ``prelogin_timeout`` of
        connecting, whatever they sent meanwhile (issue 15 item 3)."""
        gate = self._ctx.gate
        if gate is None:
            return
        for conn, client in gate.expire(now):
            seclog.report("prelogin-timeout", "imap", client, timeout=int(gate.prelogin_timeout))
            conn.close(BYE_NO_LOGIN)

    def _prune(self, store: Store) -> int:
        return store.prune_expunged(self._settings.expunge_memory_days * 86400.0)

    async def run(self) -> None:
        last_prune = 0.0
        while True:
            # Sweep on the wall clock's multiples of the period, so every worker
            # sweeps at the same moments and one user's keepalives, due on the same
            # grid point (net/keepalive.py), leave together from all of them.
            await asyncio.sleep(self._period - time.time() % self._period)
            self.sweep()
            if time.monotonic() - last_prune > PRUNE_SECONDS:
                last_prune = time.monotonic()
                try:
                    await self._ctx.runner.run(self._prune)
                except StoreUnavailable as exc:  # pruning waits for the next round
                    log.warning("expunge records not pruned: %s", exc)
            h = self._ctx.hibernator
            if h is not None and self._settings.recheck_interval:
                self._share = (self._share + 1) % self._shares
                await h.recheck(self._share, self._shares)


def _listen(
    ctx: ImapContext, ep: Endpoint, tls: bool, reuse_port: bool, exhaustion: ExhaustionLog
) -> Acceptor:
    loop = asyncio.get_running_loop()
    context = ctx.tls

    # Over the per-worker cap a plaintext client hears why; a TLS one just sees the
    # close (there is no session to say it in, and a handshake would cost more).
    farewell, address_farewell = (b"", b"") if tls else (BYE_TOO_MANY, BYE_PER_ADDRESS)

    def factory() -> asyncio.Protocol:
        conn = ImapConnection(ctx, secure=tls)
        return TlsLayer(conn, context) if tls and context is not None else conn

    socks = listening_sockets(ep.host, ep.port, reuse_port, backlog=4096)
    acceptor = Acceptor(
        loop,
        factory,
        socks,
        exhaustion,
        gate=ctx.gate,
        farewell=farewell,
        address_farewell=address_farewell,
    )
    acceptor.start()
    return acceptor


def _imap_context(
    config: Config,
    runner: StoreRunner,
    bus: ServerBus,
    tls: ssl.SSLContext,
    worker: int,
    links: HomeLinks | None,
    guard: LoginGuard,
) -> ImapContext:
    """What the IMAP connections of this process share, hibernation and (with
    several workers) the channel to the home workers included."""
    loop = asyncio.get_running_loop()
    ctx = ImapContext(
        info=ServerInfo(
            config.hostname,
            True,
            __version__,
            config.default_domain,
            max_mailbox_name=config.limits.max_mailbox_name,
            max_mailbox_depth=config.limits.max_mailbox_depth,
            max_mailboxes=config.limits.max_mailboxes,
            max_append=config.limits.max_literal,
        ),
        runner=runner,
        hub=IdleHub(bus, loop),
        publisher=bus,
        limits=config.limits,
        tls=tls,
        auth_pool=ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth"),
        connections=set(),
        dummy_hash=hash_password("not a real password"),
        guard=guard,
    )
    if config.imap_settings.hibernate:
        hib = ctx.hibernator = Hibernator(ctx, loop, ImapConnection)
        if links is not None and config.imap_settings.home_workers:
            hib.homes = Homes(worker, links.channels, links.loads)
            hib.homes.start(loop, hib.adopt)
    return ctx


def _connection_gate(
    config: Config, ctx: ImapContext, smtp: list[SmtpListener], imap: list[Acceptor]
) -> ConnectionGate:
    """The caps of this worker; its count covers every connection holding a
    descriptor: IMAP (hibernated ones, those being accepted and TLS handshakes too)
    and SMTP/submission/LMTP."""

    def count() -> int:
        hib = ctx.hibernator
        n = len(ctx.connections) + tls_layer.HANDSHAKING[0] + (len(hib) if hib else 0)
        n += sum(acceptor.pending for acceptor in imap)
        return n + sum(len(listener.connections) for listener in smtp)

    lim = config.limits
    cap = descriptor_cap(lim.max_connections)
    log.info("at most %d connections in this worker", cap)
    return ConnectionGate(cap, lim.max_prelogin_per_address, lim.prelogin_timeout, count)


def _worker_counts(ctx: ImapContext, worker: int) -> dict[str, int]:
    """This process's counts for its stats file."""
    hib = ctx.hibernator
    return {
        "worker": worker,
        "connections": len(ctx.connections),
        "idlers": ctx.hub.count(),
        **(hib.counts() if hib is not None else {}),
        **tls_layer.COUNTS,
        **(ctx.gate.counts() if ctx.gate is not None else {}),
    }


def delivery_worker_count(config: Config, workers: int) -> int:
    """How many workers (the first ones) listen for SMTP, submission and LMTP.

    A delivery costs more CPU the more processes deliver at once: each commits on
    its own (smaller group commits, more contention for SQLite's write lock) and
    each switch between processes on a core runs on cold caches. With seven workers
    on two cores, all delivering, the server spent 2.3-3.5 ms of CPU per delivery;
    with two of them delivering, 1.8 ms; with one process in all, 1.1-1.3 ms. One
    delivering worker per core keeps every core usable for deliveries, and IMAP,
    where the connections (and so the descriptors) are, still spreads over all."""
    wanted = config.delivery_workers if config.delivery_workers > 0 else (os.cpu_count() or 1)
    return max(1, min(wanted, workers))


async def serve(
    config: Config,
    ready: asyncio.Event | None = None,
    worker: int = 0,
    workers: int = 1,
    links: HomeLinks | None = None,
) -> None:
    """Run one serving process until SIGTERM/SIGINT (or until cancelled).

    ``worker`` is this process's index among ``workers`` (see ``supervisor/workers.py``);
    with more than one, listeners share their ports with ``SO_REUSEPORT`` and the
    once-per-server duties (the LMTP Unix socket) fall to worker 0. ``links``, made
    by the supervisor, let hibernated sessions move to their user's home worker
    (``net/homes.py``)."""
    shared = workers > 1
    loop = asyncio.get_running_loop()
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if config.tls_cert and config.tls_key:
        cert, key = config.tls_cert, config.tls_key
    else:
        cert, key = ensure_certificate(data_dir, config.hostname)
    tls = server_context(cert, key)
    # IMAP gets a context of its own: its sessions leave OpenSSL after a TLS 1.3
    # handshake (transport/tls_records.py), which needs a key log that only our TLS layer reads.
    imap_tls = server_context(cert, key)
    tls_keylog.enable(imap_tls)
    store_url = config.store_url
    runner = StoreRunner(lambda: open_store(store_url))
    await runner.run(lambda st: None)  # open (and migrate) the store before listening
    bus = open_bus(config.bus_url)
    bus.start(loop)
    # One set of password-guessing limits for IMAP and submission (the web API, in
    # worker 0 only, keeps its own: auth/guard.py).
    guard = LoginGuard(GuardSettings.from_limits(config.limits))
    ctx = _imap_context(config, runner, bus, imap_tls, worker, links, guard)
    # Hints the bus may have missed (a reconnect to NATS, a subscription that became
    # live after the session read the store): the sessions concerned re-check, the
    # hibernated ones in the hub's batched look-up.
    stop_resync = bus.on_resync(ctx.hub.recheck)
    smtp: list[SmtpListener] = []
    servers: list[Acceptor] = []
    ctx.gate = _connection_gate(config, ctx, smtp, servers)
    exhaustion = ExhaustionLog(loop)
    exhaustion.install()
    for ep, is_tls in ((config.imap, False), (config.imaps, True)):
        if ep is not None:
            servers.append(_listen(ctx, ep, is_tls, shared, exhaustion))
            host, port = servers[-1].sockets[0].getsockname()[:2]  # the port chosen for 0
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            log.info("IMAP%s listening on %s (worker %d)", "S" if is_tls else "", where, worker)
    if worker < delivery_worker_count(config, workers):
        smtp += await start_smtp_servers(
            config,
            runner,
            bus,
            tls,
            reuse_port=shared,
            unix_sockets=worker == 0,
            guard=guard,
            gate=ctx.gate,
        )
    # -- push alerts (pushmail.push): engine + HTTP API run in worker 0 only --
    push_service = await start_push(config, runner, bus, tls, run_engine=worker == 0)
    housekeeper = asyncio.ensure_future(Housekeeper(ctx, config).run())
    metrics = await start_metrics(config, ctx, worker, servers, smtp, push_service)
    stats = LoopStats(
        data_dir / "stats" / f"worker-{worker}.json",
        lambda: _worker_counts(ctx, worker),
        interval=2.0,
    )
    stats_task = asyncio.ensure_future(stats.run())
    # What start-up built (store, contexts, listeners, imported code) lives as long as
    # the process: a full collection need not walk it (see supervisor/workers.py).
    gc.collect()
    gc.freeze()
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
        stats_task.cancel()
        stats.write()
        stats.gc.close()
        for srv in servers:
            srv.close()
        for conn in list(ctx.connections):
            conn.close(BYE_SHUTDOWN)
        if ctx.hibernator is not None:
            ctx.hibernator.close(BYE_SHUTDOWN)
        for s in smtp:
            await s.aclose()
        for srv in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 2)
        await metrics.aclose()
        await push_service.aclose()  # push alerts
        stop_resync()
        bus.close()
        ctx.auth_pool.shutdown(wait=False)
        runner.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
