"""The pieces of pushmail.metrics that need no server: the commit time a hint
carries, the wake-up latency bookkeeping, the scrape listener's limits, and the
status client when nothing answers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pushmail.config import Endpoint
from pushmail.events.interfaces import MailboxChanged
from pushmail.metrics import wakeup
from pushmail.metrics.listener import MAX_CLIENTS, MAX_HEAD, Limited, start_listener
from pushmail.metrics.series import CONNECTS, WAKEUP_SECONDS
from pushmail.metrics.status import StatusUnavailable, format_status, read_status


def test_hint_carries_commit_time() -> None:
    event = MailboxChanged(1, 2, 3, "new", 1_700_000_000.25)
    back = MailboxChanged.decode(event.encode())
    assert back == event and back is not None and back.at == 1_700_000_000.25
    plain = MailboxChanged(1, 2, 3, "flags")
    assert plain.encode() == b"1 2 3 flags"  # unchanged without a time
    assert MailboxChanged.decode(b"1 2 3 flags") == plain
    # The time is not part of what the hint means, and junk in it spoils nothing else.
    assert MailboxChanged(1, 2, 3, "new", 5.0) == MailboxChanged(1, 2, 3, "new")
    for junk in (b"1 2 3 new nan", b"1 2 3 new inf", b"1 2 3 new -4"):
        got = MailboxChanged.decode(junk)
        assert got is not None and got.at == 0.0
    assert MailboxChanged.decode(b"1 2 3 new x") is None
    assert MailboxChanged.decode(b"1 2 3 new 1.0 extra") is None


def _count() -> float:
    for family in text_string_to_metric_families(_text()):
        for s in family.samples:
            if s.name == "pushmail_wakeup_seconds_count":
                return s.value
    raise AssertionError("no wake-up histogram")


def _text() -> str:
    from pushmail.metrics.exposition import render

    return render().decode()


def test_wakeup_observed_once_per_mailbox(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    monkeypatch.setattr(WAKEUP_SECONDS, "observe", seen.append)
    wakeup.arrived(7, 8, 100.0)
    wakeup.arrived(7, 8, 150.0)  # a second delivery before anyone was told: the first counts
    monkeypatch.setattr(wakeup.time, "time", lambda: 100.5)
    wakeup.told(7, 8)
    wakeup.told(7, 8)  # the second idler of the mailbox: nothing more
    assert seen == [0.5]
    wakeup.arrived(7, 9, 100.0)
    wakeup.checked(7, 9)  # woken, nothing new: forgotten
    wakeup.told(7, 9)
    assert seen == [0.5]


def test_wakeup_pending_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wakeup, "MAX_PENDING", 10)
    for i in range(25):
        wakeup.arrived(1, i, 1.0)
        assert len(wakeup._pending) <= 10
    wakeup._pending.clear()


async def _get(port: int, request: bytes) -> bytes:
    """The whole answer; b"" when the server closed without one (a reset, when it
    left part of the request unread)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def test_listener_serves_metrics_and_refuses_the_rest() -> None:
    async def run() -> None:
        limited = Limited()
        server = await start_listener(Endpoint("127.0.0.1", 0), limited)
        assert server is not None
        port = server.sockets[0].getsockname()[1]
        try:
            CONNECTS["imap"].inc()
            ok = await _get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, body = ok.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and b"text/plain" in head
            names = {f.name for f in text_string_to_metric_families(body.decode())}
            assert {"pushmail_connections", "pushmail_imap_command_seconds"} <= names
            only_head = await _get(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
            assert only_head.startswith(b"HTTP/1.1 200 ") and only_head.endswith(b"\r\n\r\n")
            assert (await _get(port, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
            post = await _get(port, b"POST /metrics HTTP/1.1\r\n\r\n")
            assert post.startswith(b"HTTP/1.1 405")
            assert (await _get(port, b"junk\r\n\r\n")).startswith(b"HTTP/1.1 400")
            # A head over the cap is not buffered: the connection is closed unanswered.
            assert await _get(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_HEAD) == b""
            # Past MAX_CLIENTS connections at once, the next is closed at once.
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CLIENTS)]
            await asyncio.sleep(0.1)
            assert await _get(port, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
            for _, w in held:
                w.close()
            await asyncio.sleep(0.1)
            assert (await _get(port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
        finally:
            server.close()
            await server.wait_closed()
            limited.close()

    asyncio.run(run())


def test_listener_port_in_use_does_not_stop_the_server() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def run() -> None:
            limited = Limited()
            assert await start_listener(Endpoint("127.0.0.1", port), limited) is None
            limited.close()

        asyncio.run(run())


def test_status_with_a_stale_socket(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with socket.socket(socket.AF_UNIX) as s:  # bound, then closed: nobody listens
        s.bind(str(run_dir / "status.sock"))
    with pytest.raises(StatusUnavailable, match="no server is running"):
        read_status(tmp_path)
    with pytest.raises(StatusUnavailable, match="no server is running"):
        read_status(tmp_path / "elsewhere")


def test_status_format() -> None:
    lines = format_status(
        {
            "version": "9.9",
            "workers": [
                {"worker": 0, "pid": 11, "started": 1000.0, "connections": 3,
                 "sessions": {"active": 1, "idling": 1, "hibernated": 1}, "loop_lag_ms": 1.5},
            ],
            "sessions": {"active": 1, "idling": 1, "hibernated": 1},
            "listeners": [{"service": "imap", "address": "127.0.0.1:1143"}],
            "alert_queue": 2,
            "totals": {"connections": 5, "store_errors": 1},
        },
        now=1065.0,
    )  # fmt: skip
    text = "\n".join(lines)
    assert "pushmail 9.9: 1 worker, up 1m 5s" in text
    assert "1 active, 1 idling, 1 hibernated" in text
    assert "imap        127.0.0.1:1143" in text
    assert "alert queue: 2 waiting" in text and "errors: 1 store, 0 bus" in text


def test_cli_imports_no_prometheus_client() -> None:
    """prometheus-client picks its mode at import, from PROMETHEUS_MULTIPROC_DIR that
    ``serve`` sets first: the command line must not import it before that."""
    code = "import sys, pushmail.cli; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


def test_prepare_keeps_a_running_servers_figures(tmp_path: Path) -> None:
    """``serve`` empties run/metrics at start, but not under a server that runs."""
    import os

    from pushmail import metrics

    saved = os.environ.get(metrics.ENV)
    try:
        path = metrics.prepare(tmp_path)
        (path / "counter_1.db").write_bytes(b"x")
        with socket.socket(socket.AF_UNIX) as live:
            live.bind(str(tmp_path / "run" / "status.sock"))
            live.listen()
            metrics.prepare(tmp_path)
            assert (path / "counter_1.db").exists()
        metrics.prepare(tmp_path)  # the socket is left, nobody listens: a stale run
        assert not (path / "counter_1.db").exists()
        assert os.environ[metrics.ENV] == str(path)
    finally:
        if saved is None:
            os.environ.pop(metrics.ENV, None)
        else:
            os.environ[metrics.ENV] = saved


def test_hints_dropped_for_a_peer_that_does_not_read_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pushmail.events import unixsock
    from pushmail.metrics.series import REGISTRY

    def dropped() -> float:
        return REGISTRY.get_sample_value("pushmail_bus_errors_total", {"kind": "dropped"}) or 0.0

    monkeypatch.setattr(unixsock, "MAX_BACKLOG", 5)
    events = tmp_path / "ev"
    events.mkdir()
    before = dropped()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:  # bound, never read
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.bind(str(events / "peer.sock"))
        publisher = unixsock.UnixSocketPublisher(events)
        try:
            for n in range(400):
                publisher.publish(MailboxChanged(1, 1, n, "new", 1.0))
        finally:
            publisher.close()
    assert dropped() - before > 0
