"""Issue 19 items 1 and 2: a real ``pushmail serve`` (two workers) is scraped after
IMAP and LMTP traffic, the scrape is read with prometheus-client's own text parser,
and the figures must have moved; ``pushmail status`` reads the same server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port
from prometheus_client.parser import text_string_to_metric_families
from test_push_e2e import lmtp_deliver, message, read_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.extra = ("--workers", "2")
    srv.metrics = "127.0.0.1:0"  # the chosen port is read back from `pushmail status`
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _status(srv: Server, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return srv.cli("status", *extra)


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _status_json(srv: Server) -> dict[str, object]:
    r = _status(srv, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert isinstance(data, dict)
    return data


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            out[key] = out.get(key, 0.0) + s.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def test_status_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "pushmail", "status", "--data-dir", str(data)],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 69, r
    assert b"no server is running" in r.stderr
    assert b"Traceback" not in r.stderr


def test_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pushmail", "--version"], capture_output=True, timeout=30
    )
    from pushmail import __version__

    assert r.returncode == 0 and r.stdout.decode().strip() == f"pushmail {__version__}"


def test_scrape_after_traffic(server: Server) -> None:
    srv = server
    status = _status_json(srv)
    listeners = {(x["service"], x["address"]) for x in status["listeners"]}  # type: ignore[union-attr,index]
    metrics = [a for s, a in listeners if s == "metrics"]
    assert len(metrics) == 1, listeners
    assert ("imap", f"127.0.0.1:{srv.imap}") in listeners
    assert ("lmtp", f"127.0.0.1:{srv.lmtp}") in listeners
    assert len(status["workers"]) == 2  # type: ignore[arg-type]
    url = f"http://{metrics[0]}/metrics"
    before = _scrape(url)

    # A failed login, then a good one that idles on INBOX and is told of new mail.
    bad = socket.create_connection(("127.0.0.1", srv.imap), timeout=10)
    read_until(bad, rb"\* OK")
    bad.sendall(b"a LOGIN alice@example.org wrong-password\r\n")
    read_until(bad, rb"a NO")
    bad.close()
    s = socket.create_connection(("127.0.0.1", srv.imap), timeout=10)
    read_until(s, rb"\* OK")
    s.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
    read_until(s, rb"\+ idling")
    _wait_for(
        "the idler counted as idling or hibernated",
        lambda: (lambda st: st["idling"] + st["hibernated"])(_status_json(srv)["sessions"]) == 1,  # type: ignore[index]
    )
    replies = lmtp_deliver(srv, message("metrics one"))
    assert replies["alice@example.org"][0] == 250
    read_until(s, rb"\* 1 EXISTS")
    s.sendall(b"d DONE\r\ne LOGOUT\r\n")
    read_until(s, rb"e OK")
    s.close()

    def moved() -> bool:
        after = _scrape(url)
        return (
            _value(after, "pushmail_wakeup_seconds_count") >= 1
            and _value(after, "pushmail_sessions", state="idling")
            + _value(after, "pushmail_sessions", state="hibernated")
            == 0
        )

    _wait_for("the wake-up observed and the idler gone from the gauges", moved)
    after = _scrape(url)

    def grew(name: str, by: float = 1, **labels: str) -> None:
        delta = _value(after, name, **labels) - _value(before, name, **labels)
        assert delta >= by, (name, labels, delta)

    grew("pushmail_connections_total", 2, service="imap")
    grew("pushmail_connections_total", 1, service="lmtp")
    grew("pushmail_logins_total", service="imap", result="ok")
    grew("pushmail_logins_total", service="imap", result="failed")
    for command in ("LOGIN", "SELECT", "IDLE", "LOGOUT"):
        grew("pushmail_imap_command_seconds_count", command=command)
        grew("pushmail_imap_command_seconds_bucket", command=command, le="+Inf")
    grew("pushmail_delivery_seconds_count", service="lmtp")
    grew("pushmail_delivery_recipients_total", service="lmtp", outcome="stored")
    grew("pushmail_wakeup_seconds_count")
    grew("pushmail_event_loop_lag_seconds_count", 10)
    # A wake-up cannot take longer than the test did.
    assert 0 < _value(after, "pushmail_wakeup_seconds_sum") < 30
    assert _value(after, "pushmail_store_errors_total") == 0
    assert _value(after, "pushmail_bus_errors_total") == 0
    # Two workers, each with its own per-worker series (liveall: a pid label).
    pids = {dict(lab)["pid"] for (n, lab) in after if n == "pushmail_worker_connections"}
    assert len(pids) == 2

    human = _status(srv)
    assert human.returncode == 0, human.stderr
    text = human.stdout.decode()
    assert "2 workers" in text and "IMAP sessions:" in text and "listening:" in text
    assert "1 recipients stored" in text, text

    srv.stop()
    r = _status(srv)
    assert r.returncode == 69 and b"no server is running" in r.stderr, r
