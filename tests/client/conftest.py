"""Fixtures for the push client: a real pushmail server (the e2e harness, with a config
file so its keepalive and autologout can be shortened), the fault-injection proxy, and
``Watch``, which runs ``pushmail watch`` as a separate process and reads its events."""

from __future__ import annotations

import imaplib
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_server import Server, free_port
from faultproxy import FaultProxy

WAIT = 60.0  # generous: only to keep a broken build from hanging


class ConfiguredServer(Server):
    config_text: str = ""

    def args(self) -> list[str]:
        path = self.data_dir.parent / "server.toml"
        path.write_text(self.config_text)
        return [*super().args(), "--config", str(path)]


def make_server(tmp_path: Path, config_text: str = "") -> ConfiguredServer:
    srv = ConfiguredServer(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.config_text = config_text or "[imap_settings]\nidle_keepalive = 1.0\n"
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    return srv


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ConfiguredServer]:
    srv = make_server(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def proxy(server: ConfiguredServer) -> Iterator[FaultProxy]:
    p = FaultProxy(server.imap)
    try:
        yield p
    finally:
        p.close()


def deliver(srv: Server, subject: str, sender: str = "bob@example.net", size: int = 0) -> None:
    """Over LMTP while the server runs; ``pushmail deliver`` (straight into the store)
    while it is down."""
    body = "hello\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    msg = f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\n{body}"
    if srv.proc is None:
        r = srv.cli("deliver", "alice@example.org", stdin=msg.encode())
        assert r.returncode == 0, r.stderr
        return
    with smtplib.LMTP("127.0.0.1", srv.lmtp) as lmtp:
        lmtp.sendmail(sender, ["alice@example.org"], msg.encode())


def expunge(port: int, user: str, password: str, *subjects: str) -> None:
    """Another client deletes and expunges the messages with these subjects."""
    with imaplib.IMAP4("127.0.0.1", port) as m:
        m.login(user, password)
        assert m.select("INBOX")[0] == "OK"
        for subject in subjects:
            typ, data = m.uid("SEARCH", "SUBJECT", subject)
            assert typ == "OK" and data[0], subject
            assert m.uid("STORE", data[0].decode(), "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
        m.close()


def last_stopped(w: Watch) -> dict[str, int]:
    return [e for e in w.events() if e["event"] == "stopped"][-1]


FAST = {
    "idle_renew": 2.0,
    "response_timeout": 2.0,
    "backoff_min": 0.1,
    "backoff_max": 1.0,
    "tcp_keepalive": 0.0,
    "poll_interval": 0.5,
    "keepalive_learn": False,  # renew every idle_renew; test_keepalive_learn.py learns
}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


class Watch:
    """``pushmail watch`` in a subprocess, its events in ``events.jsonl``."""

    def __init__(self, tmp_path: Path, port: int, **overrides: Any) -> None:
        self.dir = tmp_path / "watch"
        self.dir.mkdir(exist_ok=True)
        self.log = self.dir / "events.jsonl"
        self.config = self.dir / "watch.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config(port, **overrides)

    def write_config(self, port: int, **overrides: Any) -> None:
        account = {
            "name": "main", "host": "127.0.0.1", "port": port, "tls": "none",
            "username": "alice@example.org", "password": "alice-secret",
            **FAST, **overrides.pop("account", {}),
        }  # fmt: skip
        top = {"state_dir": str(self.dir / "state"), "log": str(self.log), "debounce": 0.2}
        top.update({k: v for k, v in overrides.items() if k not in ("rule", "hook", "download")})
        lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
        for name in ("rule", "hook"):
            for table in overrides.get(name, []):
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
        if "download" in overrides:
            lines.append("[download]")
            lines += [f"{k} = {_toml(v)}" for k, v in overrides["download"].items()]
        lines.append("[[account]]")
        lines += [f"{k} = {_toml(v)}" for k, v in account.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pushmail", "watch", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=WAIT,
        )  # fmt: skip

    def start(self) -> None:
        with open(self.dir / "stderr.txt", "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pushmail", "watch", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.wait_for(lambda evs: any(e["event"] == "watching" for e in evs))

    def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        return code

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == "message"]

    def subjects(self, notified_only: bool = True) -> list[str]:
        return [m["subject"] for m in self.messages() if m["notified"] or not notified_only]

    def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.events()):
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        stderr = (self.dir / "stderr.txt").read_text() if (self.dir / "stderr.txt").exists() else ""
        raise AssertionError(f"condition not met; events: {self.events()}\nstderr: {stderr}")

    def wait_subjects(self, *subjects: str, notified_only: bool = True) -> None:
        want = set(subjects)
        self.wait_for(
            lambda evs: (
                want
                <= {
                    e["subject"]
                    for e in evs
                    if e["event"] == "message" and (e["notified"] or not notified_only)
                }
            )
        )

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e["event"] == event)


@pytest.fixture
def watch_factory(tmp_path: Path) -> Iterator[Callable[..., Watch]]:
    made: list[Watch] = []

    def make(port: int, **overrides: Any) -> Watch:
        w = Watch(tmp_path, port, **overrides)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


os.environ.setdefault("PYTHONUNBUFFERED", "1")
