"""Issue 15, items 5 and 6: alerts never reach inside the network (SSRF), whatever
the spelling of the address, DNS tricks or redirects; a CLI webhook gets a secret."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.abc
import pytest
from web_harness import api, basic, fresh_seclog

from pushmail.cli import main
from pushmail.push.alert import test_alert as make_test_alert
from pushmail.push.db import Device
from pushmail.push.db_sqlite import SqlitePushDB
from pushmail.push.destinations import (
    EndpointPolicy,
    RefusedEndpoint,
    check_endpoint,
    guarded_session,
    host_literal,
    refusal,
)
from pushmail.push.senders import WebhookSender

INSIDE = [
    "127.0.0.1", "127.255.1.2", "::1", "0x7f000001", "2130706433", "127.1", "0177.0.0.1",
    "0x7f.1", "169.254.169.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "100.64.0.1", "100.127.255.254", "0.0.0.0", "0", "::", "fd00::1", "fc00::1", "fe80::1",
    "fe80::1%1", "fec0::1", "ff02::1", "224.0.0.1", "239.255.255.250", "255.255.255.255",
    "240.0.0.1", "192.0.2.1", "198.18.0.1", "::ffff:127.0.0.1", "::ffff:7f00:1",
    "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1",
    "2002:7f00:1::1", "2001:db8::1", "2001::1", "100::1", "4000::1",
]  # fmt: skip
OUTSIDE = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8",
           "64:ff9b::808:808", "2002:808:808::1"]  # fmt: skip


@pytest.mark.parametrize("host", INSIDE)
def test_inside_addresses_are_refused_in_every_spelling(host: str) -> None:
    address = host_literal(host)
    assert address is not None, host
    assert refusal(address) is not None, host
    with pytest.raises(RefusedEndpoint):
        check_endpoint(f"https://{'[' + host + ']' if ':' in host else host}/x", EndpointPolicy())


@pytest.mark.parametrize("host", OUTSIDE)
def test_public_addresses_pass(host: str) -> None:
    address = host_literal(host)
    assert address is not None and refusal(address) is None, host


def test_url_rules() -> None:
    policy = EndpointPolicy()
    bad_urls = ["http://example.org/x", "ftp://example.org/", "https://", "https:///x",
                "https://user:pw@example.org/", "https://example.org:99999/", "example.org",
                "https://exa mple.org/", "https://localhost/x", "https://localhost./x",
                42]  # fmt: skip
    for bad in bad_urls:
        with pytest.raises(RefusedEndpoint):
            check_endpoint(bad, policy)
    assert check_endpoint("https://hooks.example.invalid/p", policy)  # unresolvable: later
    lifted = EndpointPolicy(allow_http=True, allow_private=True)
    assert check_endpoint("http://127.0.0.1:9/x", lifted) == "http://127.0.0.1:9/x"
    with pytest.raises(RefusedEndpoint):
        check_endpoint("ftp://127.0.0.1/", lifted)


def test_api_refuses_inside_endpoints_and_nothing_reaches_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="pushmail.security")
    fresh_seclog(monkeypatch)

    async def scenario() -> None:
        async with api(tmp_path, allow_http_endpoints=True) as a:
            port = a.endpoint.base_url.rsplit(":", 1)[1]
            for host in ["127.0.0.1", "[::1]", "0x7f000001", "2130706433", "127.1", "localhost",
                         "169.254.169.254", "[::ffff:127.0.0.1]"]:  # fmt: skip
                for kind in ("webhook", "ntfy"):
                    body = json.dumps({"kind": kind, "endpoint": f"http://{host}:{port}/h"})
                    status, _, answer = await a.request(
                        "POST", "/api/devices", body.encode(),
                        {"Authorization": basic(), "Content-Type": "application/json"},
                    )  # fmt: skip
                    assert status == 400, (host, kind, answer)
                    assert b"allow_private_endpoints" in answer
            keys = a.endpoint.keys
            body = json.dumps({"kind": "webpush", "endpoint": a.endpoint.url(), "keys": keys})
            status, _, _ = await a.request("POST", "/api/devices", body.encode(),
                {"Authorization": basic(), "Content-Type": "application/json"})  # fmt: skip
            assert status == 400
            assert a.endpoint.attempts == 0

    asyncio.run(scenario())
    refused = [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]
    expected = "endpoint-refused service=web client=127.0.0.1 user=alice@"
    assert any(m.startswith(expected) for m in refused)


def test_the_opt_in_lets_tests_reach_loopback(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with api(tmp_path, allow_http_endpoints=True, allow_private_endpoints=True) as a:
            body = json.dumps({"kind": "webhook", "endpoint": a.endpoint.url("/h")})
            status, _, answer = await a.request("POST", "/api/devices", body.encode(),
                {"Authorization": basic(), "Content-Type": "application/json"})  # fmt: skip
            assert status == 201, answer

    asyncio.run(scenario())


class Rebinding(aiohttp.abc.AbstractResolver):
    """DNS that answers what an attacker's name server would after the check."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
        return [{"hostname": host, "host": a, "port": port, "proto": 0,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "flags": socket.AI_NUMERICHOST} for a in self.addresses]  # fmt: skip

    async def close(self) -> None:
        pass


def _device(endpoint: str, secret: str = "s" * 20) -> Device:
    return Device(1, 1, "webhook", endpoint, "", "", secret, "", time.time())


def test_the_connected_address_is_checked_after_dns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device stored before (or a name that resolved elsewhere when it was added):
    the socket itself is refused, so neither a stored loopback URL nor a name that
    now resolves to loopback is reached, and nothing is retried."""
    caplog.set_level(logging.INFO, logger="pushmail.security")
    fresh_seclog(monkeypatch)
    from push_endpoint import PushEndpoint

    async def scenario() -> None:
        ep = PushEndpoint()
        await ep.start()
        port = ep.base_url.rsplit(":", 1)[1]
        alert, topic = make_test_alert(b"k" * 32, 1)
        try:
            cases = [(ep.url("/h"), None), (f"http://0x7f000001:{port}/h", None),
                     (f"http://rebind.example:{port}/h", Rebinding("127.0.0.1"))]  # fmt: skip
            for url, resolver in cases:
                async with guarded_session(False, resolver) as session:
                    outcome = await WebhookSender(session, 5.0).send(_device(url), alert, topic)
                assert outcome.status == "failed" and "refused" in outcome.detail, url
            # A name with several inside addresses (IPv4 and IPv6): still one refusal.
            async with guarded_session(False, Rebinding("127.0.0.1", "::1")) as session:
                url = f"http://both.example:{port}/h"
                outcome = await WebhookSender(session, 5.0).send(_device(url), alert, topic)
            assert outcome.status == "failed" and "refused" in outcome.detail, outcome
            assert ep.attempts == 0
            async with guarded_session(True, Rebinding("127.0.0.1")) as session:
                url = f"http://rebind.example:{port}/h"
                outcome = await WebhookSender(session, 5.0).send(_device(url), alert, topic)
            assert outcome.status == "ok" and ep.attempts == 1
            assert ep.received[0].headers["Host"] == f"rebind.example:{port}"
        finally:
            await ep.stop()

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]
    assert any(m.startswith("push-destination-refused service=push client=- address=127.0.0.1")
               for m in lines)  # fmt: skip


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    from aiohttp import web
    from push_endpoint import PushEndpoint

    async def scenario() -> None:
        inner = PushEndpoint()
        await inner.start()

        async def bounce(request: web.Request) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect(inner.url("/secret"))

        app = web.Application()
        app.router.add_post("/h", bounce)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/h"
        alert, topic = make_test_alert(b"k" * 32, 1)
        try:
            async with guarded_session(True) as session:
                outcome = await WebhookSender(session, 5.0).send(_device(url), alert, topic)
            assert outcome.status == "failed" and outcome.detail == "307"
            assert inner.attempts == 0
        finally:
            await runner.cleanup()
            await inner.stop()

    asyncio.run(scenario())


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-pw-pw\n"))
    assert main(["user", "add", "alice@example.org", "--password-stdin", "--data-dir", str(d)]) == 0
    return d


def _config(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "pushmail.toml"
    path.write_text(text)
    return ["--config", str(path)]


def test_cli_applies_the_api_rules(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dd = ["--data-dir", str(data_dir)]
    add = ["alerts", "add", "alice@example.org", "--kind", "ntfy", *dd]
    # http:// was taken by the CLI and refused by the API; now both refuse it.
    assert main([*add, "--endpoint", "http://ntfy.example.invalid/t"]) == 64
    for inside in ["https://127.0.0.1/t", "https://[::1]/t", "https://0x7f000001/t",
                   "https://2130706433/t", "https://169.254.169.254/latest/meta-data",
                   "https://localhost/t", "https://[::ffff:10.0.0.1]/t"]:  # fmt: skip
        assert main([*add, "--endpoint", inside]) == 64, inside
        assert "allow_private_endpoints" in capsys.readouterr().err
    lifted = _config(
        tmp_path, "[push]\nallow_http_endpoints = true\nallow_private_endpoints = true\n"
    )
    assert main([*add, "--endpoint", "http://127.0.0.1:9/t", *lifted]) == 0
    assert main(["alerts", "list", *dd]) == 0
    assert "ntfy\thttp://127.0.0.1:9" in capsys.readouterr().out


def test_cli_webhook_gets_a_secret_shown_once(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dd = ["--data-dir", str(data_dir)]
    args = ["alerts", "add", "alice@example.org", "--kind", "webhook", *dd]
    assert main([*args, "--endpoint", "https://hooks.example.invalid/a"]) == 0
    *said, secret_line = capsys.readouterr().out.splitlines()
    device_id = int(said[0].split()[1])  # "device N added for ..."
    label, _, secret = secret_line.partition(": ")
    assert label == "secret" and len(secret) >= 32
    assert main([*args, "--endpoint", "https://hooks.example.invalid/b", "--secret", "short"]) == 64
    assert main([*args, "--endpoint", "https://hooks.example.invalid/c", "--secret", "k" * 20]) == 0
    said_now = capsys.readouterr().out
    assert "added" in said_now and "secret" not in said_now  # a given secret is not echoed
    db = SqlitePushDB(data_dir / "push.sqlite3")
    try:
        device = db.device(device_id)
        assert device is not None and device.secret == secret
        assert all(d.secret for d in db.devices())
        with pytest.raises(ValueError):
            db.add_device(_device("https://hooks.example.invalid/d", secret=""))
    finally:
        db.close()
    assert main(["alerts", "list", *dd]) == 0
    assert secret not in capsys.readouterr().out  # shown once, never listed


def test_a_webhook_without_secret_is_never_signed() -> None:
    from push_endpoint import PushEndpoint

    async def scenario() -> None:
        ep = PushEndpoint()
        await ep.start()
        alert, topic = make_test_alert(b"k" * 32, 1)
        try:
            async with guarded_session(True) as session:
                outcome = await WebhookSender(session, 5.0).send(
                    _device(ep.url("/h"), secret=""), alert, topic
                )
            assert outcome.status == "failed" and ep.attempts == 0
        finally:
            await ep.stop()

    asyncio.run(scenario())


def test_refusal_table_matches_ipaddress_where_it_is_settled() -> None:
    """A cross-check: every RFC 1918, loopback and link-local address is refused."""
    for net in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fe80::/10"]:
        network = ipaddress.ip_network(net)
        for address in (network[0], network[1], network[-1]):
            assert refusal(address) is not None, address
