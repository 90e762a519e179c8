"""The HTTP API in-process, as ``serve`` starts it (``start_push``) over TLS: auth,
devices, rules, test alerts to a real endpoint, and the OpenAPI description."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from push_endpoint import PushEndpoint

from pushmail.auth.passwords import hash_password
from pushmail.config import load_config
from pushmail.events.unixsock import UnixSocketBus
from pushmail.server.push_service import start_push
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner
from pushmail.transport.tls import ensure_certificate, server_context
from pushmail.web.app import make_app
from pushmail.web.openapi import openapi

ALICE = ("alice@example.org", "alice-pw")
BOB = ("bob@example.org", "bob-pw")
Auth = tuple[str, str] | None


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(
        self, method: str, path: str, body: Any = None, who: Auth = ALICE, csrf: bool = True
    ) -> tuple[int, Any]:
        headers = {"X-Requested-With": "pushmail"} if csrf else {}
        if method != "GET":  # every change is JSON, also one without a body (the page's way)
            headers["Content-Type"] = "application/json"
        if who is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(who).encode()).decode()
        async with self.session.request(
            method, self.base + path, json=body, headers=headers, ssl=False
        ) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data


Scenario = Callable[[Client, PushEndpoint], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        config = load_config(
            None,
            {"data_dir": tmp_path, "push.http": "127.0.0.1:0", "push.allow_http_endpoints": True,
             "push.allow_private_endpoints": True, "push.hold": 0.0},
        )  # fmt: skip
        runner = StoreRunner(lambda: SqliteStore(config.db_path))
        for address, pw in (ALICE, BOB):
            h = hash_password(pw)
            await runner.run(lambda st, a=address, h=h: st.create_user(a, h))  # type: ignore[misc]
        bus = UnixSocketBus(config.events_dir)
        bus.start(asyncio.get_running_loop())
        tls = server_context(*ensure_certificate(tmp_path, "localhost"))
        service = await start_push(config, runner, bus, tls)
        ep = PushEndpoint()
        await ep.start()
        try:
            jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address host
            async with aiohttp.ClientSession(cookie_jar=jar) as session:
                await scenario(Client(session, f"https://127.0.0.1:{service.http_port}"), ep)
        finally:
            await ep.stop()
            await service.aclose()
            bus.close()
            runner.close()

    asyncio.run(main())


def test_authentication(tmp_path: Path) -> None:
    async def scenario(c: Client, ep: PushEndpoint) -> None:
        assert (await c.call("GET", "/api/devices", who=None))[0] == 401
        assert (await c.call("GET", "/api/devices", who=(ALICE[0], "wrong")))[0] == 401
        assert (await c.call("GET", "/api/devices", who=("nobody@x.org", "pw")))[0] == 401
        status, me = await c.call("GET", "/api/me")
        assert status == 200 and me["address"] == ALICE[0] and len(me["vapid_public_key"]) == 87
        # The login form's cookie works for reads; changes also need the CSRF header.
        status, _ = await c.call("POST", "/api/login", {"address": ALICE[0], "password": "no"})
        assert status == 401
        status, _ = await c.call("POST", "/api/login", {"address": ALICE[0], "password": ALICE[1]})
        assert status == 200
        assert (await c.call("GET", "/api/rules", who=None))[0] == 200
        assert (await c.call("PUT", "/api/rules", {}, who=None, csrf=False))[0] == 403
        assert (await c.call("PUT", "/api/rules", {}, who=None))[0] == 200
        assert (await c.call("POST", "/api/logout", who=None))[0] == 204
        assert (await c.call("GET", "/api/rules", who=None))[0] == 401

    run(tmp_path, scenario)


def test_devices_are_checked_and_private(tmp_path: Path) -> None:
    async def scenario(c: Client, ep: PushEndpoint) -> None:
        bad = [
            {"kind": "carrier-pigeon", "endpoint": ep.url()},
            {"kind": "webpush", "endpoint": ep.url()},
            {"kind": "webpush", "endpoint": ep.url(), "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
            {"kind": "webhook", "endpoint": "ftp://example.org/x"},
            {"kind": "webhook", "endpoint": ep.url(), "secret": "short"},
        ]
        for body in bad:
            status, err = await c.call("POST", "/api/devices", body)
            assert status == 400 and err["error"], body
        status, hook = await c.call(
            "POST", "/api/devices", {"kind": "webhook", "endpoint": ep.url("/h")}
        )
        assert status == 201 and len(hook["secret"]) >= 32  # made for us, shown once
        status, push = await c.call(
            "POST", "/api/devices", {"kind": "webpush", "endpoint": ep.url(), "keys": ep.keys}
        )
        assert status == 201 and "secret" not in push
        status, listed = await c.call("GET", "/api/devices")
        assert [d["id"] for d in listed] == [hook["id"], push["id"]]
        assert all("secret" not in d and "/push" not in d["endpoint_origin"] for d in listed)
        # Bob sees none of it and cannot touch it.
        assert (await c.call("GET", "/api/devices", who=BOB))[1] == []
        assert (await c.call("DELETE", f"/api/devices/{push['id']}", who=BOB))[0] == 404
        assert (await c.call("PUT", f"/api/devices/{push['id']}/rules", {}, who=BOB))[0] == 404
        assert (await c.call("DELETE", f"/api/devices/{hook['id']}"))[0] == 204
        assert (await c.call("DELETE", "/api/devices/banana"))[0] == 404
        assert len((await c.call("GET", "/api/devices"))[1]) == 1

    run(tmp_path, scenario)


def test_rules_and_test_alert(tmp_path: Path) -> None:
    async def scenario(c: Client, ep: PushEndpoint) -> None:
        status, rules = await c.call("GET", "/api/rules")
        assert status == 200 and rules["enabled"] and rules["folders"] == ["INBOX"]
        status, err = await c.call("PUT", "/api/rules", {"quiet_hours": {"start": "9", "end": "5"}})
        assert status == 400 and "quiet_hours" in err["error"]
        assert (await c.call("PUT", "/api/rules", ["not", "an", "object"]))[0] == 400
        body = {"only_from": ["boss@example.com"], "timezone": "Europe/Berlin"}
        status, rules = await c.call("PUT", "/api/rules", body)
        assert status == 200 and rules["only_from"] == ["boss@example.com"]
        assert (await c.call("GET", "/api/rules"))[1] == rules
        _, device = await c.call(
            "POST", "/api/devices", {"kind": "webpush", "endpoint": ep.url(), "keys": ep.keys}
        )
        path = f"/api/devices/{device['id']}"
        assert (await c.call("GET", path + "/rules"))[1] is None
        assert (await c.call("PUT", path + "/rules", {"enabled": False}))[1]["enabled"] is False
        assert (await c.call("GET", path + "/rules"))[1]["enabled"] is False
        assert (await c.call("DELETE", path + "/rules"))[0] == 204
        assert (await c.call("POST", path + "/test"))[0] == 202
        for _ in range(1000):
            if ep.received:
                break
            await asyncio.sleep(0.01)
        assert ep.errors == []
        [got] = ep.received
        assert got.payload is not None and got.payload["test"] is True

    run(tmp_path, scenario)


def test_patch_rules_changes_only_the_keys_given(tmp_path: Path) -> None:
    """The page muted, then a script (or the page's rules form) saved other keys: the
    mute must survive. PUT replaces everything (keys left out get defaults); PATCH
    merges."""

    async def scenario(c: Client, ep: PushEndpoint) -> None:
        until = "2030-01-01T08:00:00+00:00"
        status, rules = await c.call("PATCH", "/api/rules", {"muted_until": until})
        assert status == 200 and rules["muted_until"] == until and rules["folders"] == ["INBOX"]
        status, rules = await c.call("PATCH", "/api/rules", {"only_from": ["boss@example.com"]})
        assert status == 200 and rules["muted_until"] == until
        assert rules["only_from"] == ["boss@example.com"]
        assert (await c.call("GET", "/api/rules"))[1] == rules
        status, rules = await c.call("PATCH", "/api/rules", {"muted_until": None})
        assert status == 200 and rules["muted_until"] is None
        assert rules["only_from"] == ["boss@example.com"]
        # Checked like PUT: a bad value or an unknown key changes nothing.
        status, err = await c.call("PATCH", "/api/rules", {"quiet_hours": {"start": "9"}})
        assert status == 400 and "quiet_hours" in err["error"]
        assert (await c.call("PATCH", "/api/rules", {"mute": True}))[0] == 400
        assert (await c.call("PATCH", "/api/rules", ["x"]))[0] == 400
        assert (await c.call("GET", "/api/rules"))[1] == rules
        # Only alice's rules changed.
        assert (await c.call("GET", "/api/rules", who=BOB))[1]["only_from"] == []
        # PUT still replaces the whole set: what it leaves out is back to defaults.
        await c.call("PATCH", "/api/rules", {"muted_until": until})
        status, rules = await c.call("PUT", "/api/rules", {"enabled": True})
        assert status == 200 and rules["muted_until"] is None and rules["only_from"] == []

        _, device = await c.call(
            "POST", "/api/devices", {"kind": "webpush", "endpoint": ep.url(), "keys": ep.keys}
        )
        path = f"/api/devices/{device['id']}/rules"
        status, own = await c.call("PATCH", path, {"enabled": False})
        assert status == 200 and own["enabled"] is False and own["folders"] == ["INBOX"]
        status, own = await c.call("PATCH", path, {"folders": ["*"]})
        assert own["enabled"] is False and own["folders"] == ["*"]
        assert (await c.call("PATCH", path, {"enabled": True}, who=BOB))[0] == 404

    run(tmp_path, scenario)


def test_openapi_describes_every_route(tmp_path: Path) -> None:
    async def scenario(c: Client, ep: PushEndpoint) -> None:
        status, spec = await c.call("GET", "/api/openapi.json", who=None)
        assert status == 200 and spec == openapi()

    run(tmp_path, scenario)
    app = make_app(None)  # type: ignore[arg-type]  # routes only; no request is served
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/")
        and r.method != "HEAD" and r.resource.canonical != "/api/openapi.json"
    }  # fmt: skip
    described = {(m, p) for p, ops in openapi()["paths"].items() for m in ops}
    assert routes == described


def test_a_busy_http_port_does_not_stop_the_alerts(tmp_path: Path) -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = load_config(None, {"data_dir": tmp_path, "push.http": f"127.0.0.1:{port}"})
            runner = StoreRunner(lambda: SqliteStore(config.db_path))
            bus = UnixSocketBus(config.events_dir)
            bus.start(asyncio.get_running_loop())
            service = await start_push(config, runner, bus, None)
            try:
                assert service.http_port is None and service.engine is not None
            finally:
                await service.aclose()
                bus.close()
                runner.close()

    asyncio.run(main())
