"""Issue 15, item 7: a cross-site request cannot change anything, however it is
authenticated (Basic included): changes must be JSON and, when the browser names its
origin, come from the server's own."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from web_harness import ALICE, Api, api, basic, fresh_seclog

HOOK = json.dumps({"kind": "webhook", "endpoint": "https://hooks.example.invalid/x"}).encode()
JSON = {"Content-Type": "application/json"}


async def _devices(a: Api) -> list[dict[str, object]]:
    status, _, body = await a.request("GET", "/api/devices", headers={"Authorization": basic()})
    assert status == 200
    return list(json.loads(body))


@pytest.mark.parametrize("tls", [True, False])
def test_cross_site_changes_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    caplog.set_level(logging.INFO, logger="pushmail.security")
    fresh_seclog(monkeypatch)
    auth = {"Authorization": basic()}

    async def scenario() -> None:
        async with api(tmp_path, tls=tls) as a:
            # The reproducer: a cross-site form POST (text/plain) with Basic.
            form = {**auth, "Content-Type": "text/plain", "Origin": "https://evil.example"}
            status, _, _ = await a.request("POST", "/api/devices", HOOK, form)
            assert status == 415
            # The same without an Origin (an older browser), and other non-JSON kinds.
            for kind in ["text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/jsonx", None]:  # fmt: skip
                headers = dict(auth) if kind is None else {**auth, "Content-Type": kind}
                status, _, _ = await a.request("POST", "/api/devices", HOOK, headers)
                assert status == 415, kind
            assert await _devices(a) == []
            # JSON from another origin, or from an opaque one.
            for origin in ["https://evil.example", "null", f"http://127.0.0.1:{a.port + 1}",
                           a.origin.replace("127.0.0.1", "localhost"),
                           a.origin.replace("http", "ftp", 1)]:  # fmt: skip
                headers = {**auth, **JSON, "Origin": origin}
                status, _, _ = await a.request("POST", "/api/devices", HOOK, headers)
                assert status == 403, origin
            assert await _devices(a) == []
            # The page itself (same origin) and non-browser clients (no Origin) work.
            status, _, _ = await a.request("POST", "/api/devices", HOOK,
                                           {**auth, **JSON, "Origin": a.origin})  # fmt: skip
            assert status == 201
            [device] = await _devices(a)
            path = f"/api/devices/{device['id']}/test"
            # A change without a body still needs the JSON type (a no-cors fetch has none).
            assert (await a.request("POST", path, b"", auth))[0] == 415
            assert (await a.request("DELETE", f"/api/devices/{device['id']}", b"", auth))[0] == 415
            assert (await a.request("POST", path, b"", {**auth, **JSON}))[0] == 202
            # Login and logout are changes too (login CSRF signs a victim in as you).
            login = json.dumps({"address": ALICE[0], "password": ALICE[1]}).encode()
            status, _, _ = await a.request(
                "POST", "/api/login", login, {"Content-Type": "text/plain"}
            )
            assert status == 415
            status, _, _ = await a.request(
                "POST", "/api/login", login, {**JSON, "Origin": "https://evil.example"}
            )
            assert status == 403
            status, headers, _ = await a.request("POST", "/api/login", login, JSON)
            assert status == 200 and "pushmail_session" in headers.get("set-cookie", "")
            # Reads are not changes: a foreign Origin may read (the browser keeps the answer).
            headers = {**auth, "Origin": "https://evil.example"}
            assert (await a.request("GET", "/api/devices", headers=headers))[0] == 200

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]
    assert any(
        m.startswith("web-csrf-refused service=web client=127.0.0.1 method=POST path=/api/devices")
        and "reason=content-type" in m
        for m in lines
    )
    assert any("reason=origin origin=https://evil.example" in m for m in lines)


def test_cookie_changes_still_need_the_page_header(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with api(tmp_path) as a:
            login = json.dumps({"address": ALICE[0], "password": ALICE[1]}).encode()
            _, headers, _ = await a.request("POST", "/api/login", login, JSON)
            cookie = headers["set-cookie"].split(";", 1)[0]
            same = {**JSON, "Cookie": cookie, "Origin": a.origin}
            assert (await a.request("PUT", "/api/rules", b"{}", same))[0] == 403
            same["X-Requested-With"] = "pushmail"
            assert (await a.request("PUT", "/api/rules", b"{}", same))[0] == 200

    asyncio.run(scenario())
