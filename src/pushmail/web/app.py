"""The user-facing HTTP API and settings page (aiohttp).

Users sign in with their mail credentials (HTTP Basic, or the login form's session
cookie) and manage only their own devices and rules. Everything is JSON; the
OpenAPI description is at ``/api/openapi.json``.

Cross-site requests (CSRF): every request that changes something must be
``application/json`` and, when it has an ``Origin``, come from this server's own
origin, however it is authenticated (``_same_origin``). Requests authenticated by
cookie must also carry ``X-Requested-With: pushmail``, which a cross-site form cannot
set; the cookie is ``SameSite=Strict`` besides.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from pushmail import seclog
from pushmail.push.db import (
    ALL_DEVICES,
    KINDS,
    MAX_SECRET,
    MIN_SECRET,
    DbThread,
    Device,
    PushDB,
    new_secret,
)
from pushmail.push.destinations import EndpointPolicy, RefusedEndpoint, check_endpoint
from pushmail.push.engine import AlertEngine
from pushmail.push.rules import Rules
from pushmail.push.webpush import VapidKey
from pushmail.store.interfaces import User
from pushmail.web.auth import COOKIE, SESSION_SECONDS, Authenticator
from pushmail.web.openapi import openapi

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_DEVICES = 20  # per user
MAX_BODY = 64 * 1024
CSRF_HEADER = "X-Requested-With"
_USER = web.RequestKey("user", User)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class WebContext:
    auth: Authenticator
    db: DbThread
    engine: AlertEngine
    vapid: VapidKey
    endpoints: EndpointPolicy
    secure_cookie: bool


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def make_app(ctx: WebContext, listener: Any = None) -> web.Application:
    """The aiohttp application: static page, API routes, error and auth middleware;
    ``listener``: the listener's middleware (``Connections.body_middleware``)."""
    middlewares = [_errors, _same_origin(ctx), _authenticate(ctx)]
    if listener is not None:
        middlewares.insert(1, listener)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app.on_response_prepare.append(_security_headers)
    api = Api(ctx)
    r = app.router
    r.add_get("/", _static("index.html", "text/html"))
    r.add_get("/app.js", _static("app.js", "text/javascript"))
    r.add_get("/app.css", _static("app.css", "text/css"))
    r.add_get("/sw.js", _static("sw.js", "text/javascript"))
    r.add_get("/api/openapi.json", _openapi)
    r.add_post("/api/login", api.login)
    r.add_post("/api/logout", api.logout)
    r.add_get("/api/me", api.me)
    r.add_get("/api/devices", api.list_devices)
    r.add_post("/api/devices", api.add_device)
    r.add_delete("/api/devices/{id}", api.remove_device)
    r.add_post("/api/devices/{id}/test", api.test_device)
    r.add_get("/api/rules", api.get_rules)
    r.add_put("/api/rules", api.put_rules)
    r.add_patch("/api/rules", api.patch_rules)
    r.add_get("/api/devices/{id}/rules", api.get_device_rules)
    r.add_put("/api/devices/{id}/rules", api.put_device_rules)
    r.add_patch("/api/devices/{id}/rules", api.patch_device_rules)
    r.add_delete("/api/devices/{id}/rules", api.delete_device_rules)
    return app


PUBLIC = frozenset(
    {"/", "/app.js", "/app.css", "/sw.js", "/api/openapi.json", "/api/login", "/api/logout"}
)


def _same_origin(ctx: WebContext) -> Any:
    """A change must be JSON and, if the browser names its origin, come from ours.

    Why both, whatever the authentication: a browser sends remembered Basic
    credentials with a cross-site request too, and a cross-site form or ``no-cors``
    fetch can send only ``text/plain``, form encodings or no body at all, never
    ``application/json`` (that needs a CORS preflight, which this server never
    grants). ``Origin`` closes the rest where browsers send it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in SAFE_METHODS:
            return await handler(request)
        origin = request.headers.get("Origin")
        if request.content_type != "application/json":
            _refuse(request, "content-type", origin)
            raise ApiError(415, "changes must be sent as application/json")
        scheme = "https" if ctx.secure_cookie else "http"  # the listener's own scheme
        if origin is not None and not _same(origin, f"{scheme}://{request.host}"):
            _refuse(request, "origin", origin)
            raise ApiError(403, "cross-origin request refused")
        return await handler(request)

    return middleware


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _same(origin: str, own: str) -> bool:
    """Same scheme, host and port (default ports made explicit); False if either
    cannot be parsed (``Origin: null`` included)."""
    try:
        a, b = URL(origin), URL(own)
        return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port) and a.host is not None
    except ValueError:
        return False


def _refuse(request: web.Request, reason: str, origin: str | None) -> None:
    seclog.report(
        "web-csrf-refused", "web", request.remote or "-", method=request.method,
        path=request.path, reason=reason, origin=origin or "-",
    )  # fmt: skip


def _authenticate(ctx: WebContext) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC:
            return await handler(request)
        user = None
        header = request.headers.get("Authorization")
        if header is not None:
            user = await ctx.auth.check_basic(header, request.remote or "local")
        elif COOKIE in request.cookies:
            user = await ctx.auth.check_cookie(request.cookies[COOKIE])
            changes = request.method not in ("GET", "HEAD")
            if user is not None and changes and request.headers.get(CSRF_HEADER) != "pushmail":
                raise ApiError(403, f"cookie-authenticated changes need {CSRF_HEADER}")
        if user is None:
            # No Basic challenge for the settings page's own requests: a browser
            # would answer it with its password dialog instead of the login form.
            from_page = request.headers.get(CSRF_HEADER) == "pushmail"
            challenge = {} if from_page else {"WWW-Authenticate": 'Basic realm="pushmail"'}
            return _json({"error": "authentication required"}, status=401, headers=challenge)
        request[_USER] = user
        return await handler(request)

    return middleware


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure is a JSON ``{"error": ...}``; a bug is a 500 that is logged."""
    try:
        return await handler(request)
    except ApiError as e:
        return _json({"error": str(e)}, status=e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _json({"error": e.reason}, status=e.status)
    except Exception:
        log.exception("web: %s %s failed", request.method, request.path)
        return _json({"error": "internal error"}, status=500)


class Api:
    """The route handlers. Each works only on the signed-in user's own data."""

    def __init__(self, ctx: WebContext) -> None:
        self._ctx = ctx

    async def login(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        address, password = body.get("address"), body.get("password")
        if not isinstance(address, str) or not isinstance(password, str):
            raise ApiError(400, "address and password are required")
        user = await self._ctx.auth.check_password(address, password, request.remote or "local")
        if user is None:
            raise ApiError(401, "wrong address or password")
        resp = _json({"address": user.address})
        resp.set_cookie(
            COOKIE,
            self._ctx.auth.make_cookie(user),
            max_age=SESSION_SECONDS,
            httponly=True,
            secure=self._ctx.secure_cookie,
            samesite="Strict",
            path="/",
        )
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        resp = web.Response(status=204)
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def me(self, request: web.Request) -> web.StreamResponse:
        user = request[_USER]
        return _json(
            {
                "address": user.address,
                "account": self._ctx.engine.account(user.id),
                "vapid_public_key": self._ctx.vapid.application_server_key,
            }
        )

    async def list_devices(self, request: web.Request) -> web.StreamResponse:
        user = request[_USER]
        devices = await self._ctx.db.run(lambda db: db.devices(user.id))
        return _json([d.public() for d in devices])

    async def add_device(self, request: web.Request) -> web.StreamResponse:
        user = request[_USER]
        body = await _body(request)
        device, shown_secret = self._new_device(user, body)
        await self._check_endpoint(request, user, device.endpoint)

        def add(db: PushDB) -> Device | None:
            known = {d.endpoint for d in db.devices(user.id)}
            if len(known) >= MAX_DEVICES and device.endpoint not in known:
                return None
            return db.add_device(device)

        stored = await self._ctx.db.run(add)
        if stored is None:
            raise ApiError(409, f"at most {MAX_DEVICES} devices per user")
        out = stored.public()
        if shown_secret:
            out["secret"] = shown_secret  # shown once, for the webhook receiver
        return _json(out, status=201)

    def _new_device(self, user: User, body: dict[str, Any]) -> tuple[Device, str]:
        kind = body.get("kind")
        if kind not in KINDS:
            raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
        endpoint = body.get("endpoint")
        if not isinstance(endpoint, str):
            raise ApiError(400, "endpoint must be a URL")
        label = body.get("label", "")
        if not isinstance(label, str) or len(label) > 100:
            raise ApiError(400, "label must be a string of at most 100 characters")
        p256dh = auth = secret = ""
        shown = ""
        if kind == "webpush":
            p256dh, auth = _webpush_keys(body.get("keys"))
        else:
            given = body.get("secret")
            if given is not None and (
                not isinstance(given, str) or not MIN_SECRET <= len(given) <= MAX_SECRET
            ):
                raise ApiError(400, f"secret must be {MIN_SECRET} to {MAX_SECRET} characters")
            secret = given or (new_secret() if kind == "webhook" else "")
            shown = secret if given is None and kind == "webhook" else ""
        device = Device(0, user.id, kind, endpoint, p256dh, auth, secret, label, time.time())
        return device, shown

    async def _check_endpoint(self, request: web.Request, user: User, url: str) -> None:
        """The rule the CLI applies too (push/destinations.py); resolving a name
        blocks, so it runs on a thread."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, check_endpoint, url, self._ctx.endpoints)
        except RefusedEndpoint as e:
            seclog.report(
                "endpoint-refused", "web", request.remote or "-", user.address, reason=str(e)
            )
            raise ApiError(400, str(e)) from None

    async def remove_device(self, request: web.Request) -> web.StreamResponse:
        device = await self._own_device(request)
        await self._ctx.db.run(lambda db: db.remove_device(device.id))
        return web.Response(status=204)

    async def test_device(self, request: web.Request) -> web.StreamResponse:
        device = await self._own_device(request)
        await self._ctx.engine.send_test(device)
        return _json({"queued": True}, status=202)

    async def get_rules(self, request: web.Request) -> web.StreamResponse:
        user = request[_USER]
        rules = await self._ctx.db.run(lambda db: db.rules(user.id))
        return _json((rules or Rules()).to_json())

    async def put_rules(self, request: web.Request) -> web.StreamResponse:
        user = request[_USER]
        rules = _rules(await _body(request))
        await self._ctx.db.run(lambda db: db.set_rules(user.id, rules))
        return _json(rules.to_json())

    async def patch_rules(self, request: web.Request) -> web.StreamResponse:
        """Change only the keys given (``null`` clears ``muted_until``/``quiet_hours``):
        saving the rules form must not undo a mute set meanwhile from elsewhere."""
        user = request[_USER]
        body = await _body(request)
        return _json(await self._ctx.db.run(lambda db: _patch(db, user.id, body)))

    async def get_device_rules(self, request: web.Request) -> web.StreamResponse:
        device = await self._own_device(request)
        rules = await self._ctx.db.run(lambda db: db.rules(device.user_id, device.id))
        return _json(rules.to_json() if rules else None)

    async def put_device_rules(self, request: web.Request) -> web.StreamResponse:
        device = await self._own_device(request)
        rules = _rules(await _body(request))
        await self._ctx.db.run(lambda db: db.set_rules(device.user_id, rules, device.id))
        return _json(rules.to_json())

    async def patch_device_rules(self, request: web.Request) -> web.StreamResponse:
        device = await self._own_device(request)
        body = await _body(request)
        return _json(await self._ctx.db.run(lambda db: _patch(db, device.user_id, body, device.id)))

    async def delete_device_rules(self, request: web.Request) -> web.StreamResponse:
        device = await self._own_device(request)
        await self._ctx.db.run(lambda db: db.set_rules(device.user_id, None, device.id))
        return web.Response(status=204)

    async def _own_device(self, request: web.Request) -> Device:
        """The device named in the path if it is the user's (404 otherwise, also
        for someone else's: ids are not secret, but existence is not shown)."""
        user = request[_USER]
        raw = request.match_info["id"]
        device_id = int(raw) if raw.isdigit() and len(raw) < 18 else -1
        device = await self._ctx.db.run(lambda db: db.device(device_id))
        if device is None or device.user_id != user.id:
            raise ApiError(404, "no such device")
        return device


async def _openapi(request: web.Request) -> web.StreamResponse:
    return _json(openapi())


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


# Every answer, the page's above all: scripts, styles and connections only from this
# origin and never inline (an injected <script> does not run), no plugins, no <base>
# rewriting, never framed (clickjacking), no MIME sniffing, no Referer to elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP 2
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _static(name: str, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=(STATIC / name).read_bytes(),
            content_type=content_type,
            headers={"Cache-Control": "no-cache"},
        )

    return handler


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _rules(body: dict[str, Any]) -> Rules:
    try:
        return Rules.from_json(body)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def _patch(db: Any, user_id: int, body: dict[str, Any], device_id: int = ALL_DEVICES) -> Any:
    """Read, merge and store in one job on the push database's thread, so two
    patches of different keys cannot lose each other's change. Keys left out keep
    their stored values (the defaults where nothing is stored)."""
    current = db.rules(user_id, device_id) or Rules()
    rules = _rules({**current.to_json(), **body})
    db.set_rules(user_id, rules, device_id)
    return rules.to_json()


def _webpush_keys(keys: Any) -> tuple[str, str]:
    """The subscription's ``p256dh`` (a P-256 point, 65 bytes) and ``auth`` (16
    bytes), URL-safe base64 as ``PushSubscription.toJSON()`` gives them."""
    if not isinstance(keys, dict):
        raise ApiError(400, "webpush needs keys: {p256dh, auth}")
    out = []
    for name, size in (("p256dh", 65), ("auth", 16)):
        value = keys.get(name)
        try:
            raw = base64.urlsafe_b64decode(str(value) + "=" * (-len(str(value)) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if not isinstance(value, str) or len(raw) != size:
            raise ApiError(400, f"keys.{name} must be {size} bytes, URL-safe base64")
        out.append(value)
    return out[0], out[1]
