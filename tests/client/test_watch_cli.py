"""Filters, VIPs, quiet hours, mute, reload, download policy, hooks, polling and login
failures — each through ``pushmail watch`` against a real pushmail server."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from faultproxy import FaultProxy

from conftest import ConfiguredServer, Watch, deliver


def _reason(w: Watch, subject: str) -> tuple[bool, str]:
    m = next(m for m in w.messages() if m["subject"] == subject)
    return m["notified"], m["reason"]


def test_rules_only_mail_from_the_boss(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(
        server.imap,
        default_action="ignore",
        vip=["*@family.example"],
        rule=[
            {"from": "*spam*", "action": "ignore"},
            {"from": "boss@work.example", "action": "notify"},
            {"subject": "*urgent*", "action": "notify"},
        ],
    )
    w.start()
    deliver(server, "hello", sender="boss@work.example")
    deliver(server, "chatter", sender="colleague@work.example")
    deliver(server, "URGENT: server down", sender="colleague@work.example")
    deliver(server, "buy now, urgent", sender="spammer@spam.example")
    deliver(server, "dinner?", sender="mum@family.example")
    w.wait_subjects("hello", "chatter", "URGENT: server down", "buy now, urgent", "dinner?",
                    notified_only=False)  # fmt: skip
    assert _reason(w, "hello") == (True, "rule")
    assert _reason(w, "chatter") == (False, "ignored")
    assert _reason(w, "URGENT: server down") == (True, "rule")
    assert _reason(w, "buy now, urgent") == (False, "ignored")
    assert _reason(w, "dinner?") == (True, "vip")


def test_quiet_hours_mute_and_reload(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    all_day = ["00:00-12:00", "12:00-00:00"]
    w = watch_factory(server.imap, quiet_hours=all_day, vip=["boss@work.example"])
    w.start()
    deliver(server, "quiet", sender="someone@example.net")
    deliver(server, "vip in quiet hours", sender="boss@work.example")
    w.wait_subjects("quiet", "vip in quiet hours", notified_only=False)
    assert _reason(w, "quiet") == (False, "quiet-hours")
    assert _reason(w, "vip in quiet hours") == (True, "vip")

    w.write_config(server.imap, vip=["boss@work.example"])  # no more quiet hours
    w.signal(signal.SIGHUP)
    w.wait_for(lambda evs: any(e["event"] == "reloaded" for e in evs))
    r = w.cli("mute", "2h")
    assert r.returncode == 0 and "muted until" in r.stdout, r.stderr
    deliver(server, "while muted", sender="boss@work.example")
    w.wait_subjects("while muted", notified_only=False)
    assert _reason(w, "while muted") == (False, "muted")
    assert w.cli("unmute").returncode == 0
    deliver(server, "unmuted", sender="someone@example.net")
    w.wait_subjects("unmuted")
    assert _reason(w, "unmuted") == (True, "default")
    assert w.cli("mute", "soon-ish").returncode == 64


def test_download_policy_and_fetch_on_demand(
    server: ConfiguredServer, watch_factory: Callable[..., Watch], tmp_path: Path
) -> None:
    md = tmp_path / "mail"
    w = watch_factory(
        server.imap,
        download={"enabled": True, "dir": str(md), "max_size": 4000, "partial_bytes": 100},
    )
    w.start()
    deliver(server, "small")
    deliver(server, "large", size=20000)
    w.wait_subjects("small", "large")
    small = next(m for m in w.messages() if m["subject"] == "small")
    large = next(m for m in w.messages() if m["subject"] == "large")
    assert not small["partial"] and large["partial"]
    whole = Path(small["path"]).read_bytes()
    assert b"Subject: small" in whole and whole.rstrip().endswith(b"hello")
    part = Path(large["path"]).read_bytes()
    assert b"X-Pushmail-Partial: yes" in part
    head, _, body = part.partition(b"\n\n")  # mailbox.Maildir stores with LF
    assert b"Subject: large" in head and 0 < len(body) <= 100
    r = w.cli("fetch", "main", "INBOX", str(large["uid"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == large["path"]
    full = Path(large["path"]).read_bytes()
    assert len(full) > 19000 and b"X-Pushmail-Partial" not in full  # LF, not CRLF
    assert w.cli("fetch", "main", "INBOX", "9999").returncode == 65


class _Hooked(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hooked.received.append(
            {"body": json.loads(self.rfile.read(length)), "token": self.headers["X-Token"]}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hooked.received = []
    httpd = HTTPServer(("127.0.0.1", 0), _Hooked)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join()


def test_command_and_webhook_hooks(
    server: ConfiguredServer, watch_factory: Callable[..., Watch], tmp_path: Path, webhook: str
) -> None:
    out = tmp_path / "hook-out"
    out.mkdir()
    command = f'cat > {out}/$PUSHMAIL_UID.json; printf "%s|%s" "$PUSHMAIL_SUBJECT" "$PUSHMAIL_FROM" > {out}/$PUSHMAIL_UID.env'  # noqa: E501
    hooks = [
        {"type": "command", "command": command},
        {"type": "webhook", "url": webhook, "headers": ["X-Token: s3"]},
        {"type": "desktop"},  # runs notify-send where it exists, else nothing
    ]
    w = watch_factory(server.imap, hook=hooks, debounce=0.5)
    w.start()
    deliver(server, "hooked one", sender="Ann <ann@example.net>")
    deliver(server, "hooked two", sender="ann@example.net")
    w.wait_subjects("hooked one", "hooked two")
    assert w.stop() == 0  # flushes the hook queue
    uids = sorted(m["uid"] for m in w.messages())
    for uid in uids:
        data = json.loads((out / f"{uid}.json").read_text())
        env = (out / f"{uid}.env").read_text()
        assert data["uid"] == uid and data["folder"] == "INBOX" and data["account"] == "main"
        assert env == f"{data['subject']}|{data['from']}"
    assert sorted(r["body"]["subject"] for r in _Hooked.received) == ["hooked one", "hooked two"]
    assert all(r["token"] == "s3" for r in _Hooked.received)
    assert not any(e["event"] == "hook_failed" for e in w.events())


def test_polling_when_the_server_has_no_idle(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    proxy.strip = b" IDLE"  # the capability lists lose IDLE
    w = watch_factory(proxy.port)
    w.start()
    assert any(e["event"] == "watching" and e["via"] == "poll" for e in w.events())
    deliver(server, "polled")
    w.wait_subjects("polled")
    deliver(server, "polled again")
    w.wait_subjects("polled again")
    assert w.subjects() == ["polled", "polled again"]


def test_wrong_password_stops_and_says_so(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(server.imap, account={"password": "wrong"})
    r = w.cli()
    assert r.returncode == 77
    failed = [e for e in w.events() if e["event"] == "auth_failed"]
    assert len(failed) == 1 and w.count("disconnected") == 0


def test_bad_config_names_the_key(tmp_path: Path, watch_factory: Callable[..., Watch]) -> None:
    w = watch_factory(1, account={"idle_renw": 5.0})
    r = w.cli()
    assert r.returncode == 78 and "idle_renw" in r.stderr
