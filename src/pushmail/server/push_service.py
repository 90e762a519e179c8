"""Wiring for ``pushmail serve``: the alert engine, the queue's dispatcher and the
HTTP server (API + settings page), started and stopped as one.

One process of a machine runs them (``run_engine=True``): only one process can own
the HTTP port. With several worker processes, the others pass ``run_engine=False``
and get a service that does nothing; they still publish change hints, which reach
the engine's process over the bus like any other listener's.

The push database follows the store (``db_open.push_db_url``). On SQLite exactly
one machine runs the engine. On PostgreSQL every node's engine process runs it at
once: each hears every hint, and the database makes sure an alert is queued once
and sent once, by whichever node claims it (``db_postgres.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from pushmail.auth.guard import GuardSettings, LoginGuard
from pushmail.auth.passwords import hash_password
from pushmail.config import Config, ConfigError, PushSettings
from pushmail.events.interfaces import AllUsersBus
from pushmail.push.db import DbThread
from pushmail.push.db_open import open_push_db, push_db_url
from pushmail.push.destinations import endpoint_policy, guarded_session
from pushmail.push.dispatcher import DeliveryPolicy, Dispatcher
from pushmail.push.engine import AlertEngine, StoreAccess
from pushmail.push.senders import NtfySender, Sender, WebhookSender
from pushmail.push.webpush import VapidKey, WebPushSender, new_vapid_pem

# The name it had as push/service.py, so log filters and operators' greps still match.
log = logging.getLogger("pushmail.push.service")


@dataclass
class PushService:
    """The running push side; ``aclose`` stops it. Fields are None when this
    process does not run the engine."""

    engine: AlertEngine | None = None
    dispatcher: Dispatcher | None = None
    db: DbThread | None = None
    http_port: int | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _cleanup: list[Callable[[], object]] = field(default_factory=list)
    _web: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        for undo in self._cleanup:
            undo()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.engine is not None:
            await self.engine.close()
        if self._web is not None:
            await self._web.cleanup()
        if self._session is not None:
            await self._session.close()
        if self.db is not None:
            self.db.close()


def policy_of(settings: PushSettings) -> DeliveryPolicy:
    return DeliveryPolicy(
        hold=settings.hold, min_interval=settings.min_interval, lifetime=settings.lifetime
    )


async def start_push(
    config: Config,
    store: StoreAccess,
    bus: AllUsersBus,
    tls: ssl.SSLContext | None,
    run_engine: bool = True,
) -> PushService:
    """Start the engine, the dispatcher and (if ``[push] http`` is set) the HTTP
    server; a no-op service when ``run_engine`` is False (see module docstring)."""
    if not run_engine:
        return PushService()
    settings = config.push
    _check_http(settings)
    url = push_db_url(config.store_url, config.data_dir)
    # A claim outlives any one POST by far (see db_postgres.py: a live node keeps it).
    lease = max(120.0, 4 * settings.request_timeout)
    service = PushService(db=DbThread(lambda: open_push_db(url, lease=lease)))
    try:
        await _start(service, config, store, bus, tls)
    except BaseException:
        await service.aclose()
        raise
    return service


async def _start(
    service: PushService,
    config: Config,
    store: StoreAccess,
    bus: AllUsersBus,
    tls: ssl.SSLContext | None,
) -> None:
    settings = config.push
    assert service.db is not None
    secret = await service.db.run(lambda db: db.secret())
    pem = await service.db.run(lambda db: db.vapid_pem(new_vapid_pem))
    vapid = VapidKey.from_pem(pem, settings.vapid_subject)
    session = service._session = guarded_session(settings.allow_private_endpoints)
    timeout = settings.request_timeout
    senders: dict[str, Sender] = {
        "webpush": WebPushSender(session, vapid, settings.ttl, timeout),
        "webhook": WebhookSender(session, timeout),
        "ntfy": NtfySender(session, timeout),
    }
    policy = policy_of(settings)
    dispatcher = service.dispatcher = Dispatcher(service.db, senders, policy)
    engine = service.engine = AlertEngine(store, service.db, secret, policy, dispatcher.wake)
    service._cleanup.append(bus.subscribe_all(engine.on_event))
    service._tasks.append(asyncio.ensure_future(_forever(dispatcher)))
    if settings.http is not None:
        # The web login's password-guessing limits: the configured budgets, in an
        # instance of its own (it has its own hashing threads).
        guard = LoginGuard(GuardSettings.from_limits(config.limits))
        await _start_http(
            service, settings, store, secret, vapid, tls if settings.http_tls else None, guard
        )


async def _start_http(
    service: PushService,
    settings: PushSettings,
    store: StoreAccess,
    secret: bytes,
    vapid: VapidKey,
    tls: ssl.SSLContext | None,
    guard: LoginGuard,
) -> None:
    from pushmail.web.app import WebContext, make_app  # the web layer only when serving it
    from pushmail.web.auth import Authenticator
    from pushmail.web.listener import Connections, GuardedSite, ListenerLimits

    assert service.db is not None and service.engine is not None and settings.http is not None
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="web-auth")
    service._cleanup.append(lambda: pool.shutdown(wait=False))
    loop = asyncio.get_running_loop()
    dummy = await loop.run_in_executor(pool, hash_password, "not a real password")
    ctx = WebContext(
        auth=Authenticator(store, secret, pool, dummy, guard),
        db=service.db,
        engine=service.engine,
        vapid=vapid,
        endpoints=endpoint_policy(settings),
        secure_cookie=tls is not None,
    )
    conns = Connections(ListenerLimits.of(settings))
    runner = service._web = web.AppRunner(make_app(ctx, conns.body_middleware()), access_log=None)
    await runner.setup()
    site = GuardedSite(runner, settings.http.host, settings.http.port, tls, conns)
    try:
        await site.start()
    except OSError as e:
        # Mail must flow even if the settings page cannot: alerts are still sent.
        log.error("alerts API NOT available: cannot listen on %s: %s", settings.http, e)
        return
    service.http_port = int(runner.addresses[0][1])
    host = settings.http.host
    log.info(
        "HTTP%s (alerts API) listening on %s:%d",
        "S" if tls else "",
        f"[{host}]" if ":" in host else host,
        service.http_port,
    )


async def _forever(dispatcher: Dispatcher) -> None:
    """Run the dispatcher; if it ever fails, log and start it again after a pause
    (alerts are in the database, nothing is lost)."""
    while True:
        try:
            await dispatcher.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push: dispatcher failed; restarting in 5 s")
            await asyncio.sleep(5)


def _check_http(settings: PushSettings) -> None:
    """Passwords cross the HTTP API: plain HTTP only where nobody can listen."""
    if settings.http is None or settings.http_tls:
        return
    host = settings.http.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"push.http_tls = false is allowed only on loopback, not {host}")
