"""Issue 15 item 4 over real sockets: past a client's budget, IMAP LOGIN, submission
AUTH and the web login are refused at once, without a password check; another
address is not affected; every refusal is a security-log line."""

from __future__ import annotations

import logging
import smtplib
from base64 import b64encode
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from imap_harness import PASSWORD, LineClient, live_server
from smtp_harness import PASSWORD as SMTP_PASSWORD
from smtp_harness import Smtpd

from pushmail.auth.guard import GuardSettings, LoginGuard
from pushmail.config import Limits

SECURITY = "pushmail.security"


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.jobs = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def test_imap_login_past_the_client_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with live_server(tmp_path) as srv, caplog.at_level(logging.INFO, logger=SECURITY):
        pool = CountingPool()
        srv.ctx.auth_pool.shutdown()
        srv.ctx.auth_pool = pool
        srv.ctx.guard = LoginGuard(GuardSettings(client_burst=3, client_rate=0.001))
        for i in range(3):  # unknown users: checked against the dummy hash on the pool
            with LineClient(srv.port) as c:
                reply = c.command("a", f"LOGIN ghost{i}@example.org wrong")[-1]
                assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]")
        assert pool.jobs == 3
        with LineClient(srv.port) as c:
            reply = c.command("b", f"LOGIN alice@example.org {PASSWORD}")[-1]
            assert reply.startswith(b"b NO [UNAVAILABLE]")  # even the right password
            for tag in ("c", "d"):
                assert c.command(tag, "LOGIN x@example.org y")[-1].startswith(tag.encode() + b" NO")
            assert c.line().startswith(b"* BYE")  # refusals count as failures
        assert pool.jobs == 3  # nothing more reached the hashing threads
    lines = [r.getMessage() for r in caplog.records if r.name == SECURITY]
    assert "auth-failed service=imap client=127.0.0.1 user=ghost0@example.org" in lines
    limited = "auth-limited service=imap client=127.0.0.1 user=alice@example.org limit=client"
    assert limited in lines


def test_submission_auth_past_the_client_budget(
    smtpd_factory: Callable[..., Smtpd], caplog: pytest.LogCaptureFixture
) -> None:
    limits = Limits(
        auth_failure_delay=0.0, max_auth_failures=10, login_client_burst=2, login_client_rate=0.001
    )
    smtpd = smtpd_factory(limits=limits)
    bad = b64encode(b"\0alice@example.org\0wrong").decode()
    good = b64encode(b"\0alice@example.org\0" + SMTP_PASSWORD.encode()).decode()
    with caplog.at_level(logging.INFO, logger=SECURITY):
        client = smtplib.SMTP("127.0.0.1", smtpd.port("submission"), timeout=10)
        client.ehlo("mua.test")
        client.starttls(context=smtpd.client_tls)
        client.ehlo("mua.test")
        with client:
            assert client.docmd("AUTH", "PLAIN " + bad)[0] == 535
            assert client.docmd("AUTH", "PLAIN " + bad)[0] == 535
            code, text = client.docmd("AUTH", "PLAIN " + good)
            assert (code, text[:5]) == (454, b"4.7.0")
    lines = [r.getMessage() for r in caplog.records if r.name == SECURITY]
    assert "auth-failed service=submission client=127.0.0.1 user=alice@example.org" in lines
    assert any(
        line.startswith("auth-limited service=submission client=127.0.0.1") for line in lines
    )


def test_web_login_past_the_client_budget(tmp_path: Path) -> None:
    from push_endpoint import PushEndpoint
    from test_web_api import ALICE, Client, run

    async def scenario(c: Client, ep: PushEndpoint) -> None:
        codes = []
        for _ in range(12):
            status, _ = await c.call("POST", "/api/login", {"address": ALICE[0], "password": "no"})
            codes.append(status)
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        status, body = await c.call("GET", "/api/me")  # Basic auth: the same budget
        assert status == 429 and "too many" in body["error"]

    run(tmp_path, scenario)
