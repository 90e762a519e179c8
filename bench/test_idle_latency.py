"""Tests of the idle-latency benchmark's own logic, plus a small real run per server.

Run with ``.venv/bin/pytest bench/test_idle_latency.py``. The end-to-end cases need a
real server: Dovecot (installed from Debian, root only) or a pushmail with a working
``serve`` command; each is skipped with the reason when unavailable.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dovecot
import idle_latency
import proctools
import pytest
from idle_latency import Delivery, latency_figures, match_latencies, percentile, ratios
from imap_idle_client import ExistsEvent, IdleProtocol, SessionSpec, quote


def _specs(n: int, users: int) -> list[SessionSpec]:
    return idle_latency.plan_sessions(n, idle_latency.plan_users(users))


def test_sessions_spread_evenly_over_users() -> None:
    specs = _specs(10, 3)
    counts = {u: sum(1 for s in specs if s.user == u) for u in {s.user for s in specs}}
    assert sorted(counts.values()) == [3, 3, 4]
    assert [s.sid for s in specs] == list(range(10))


def test_latency_is_from_reply_to_first_covering_exists() -> None:
    specs = _specs(4, 2)  # sessions 0, 2 watch user 0; 1, 3 watch user 1
    user0, user1 = specs[0].user, specs[1].user
    deliveries = [Delivery(user0, 1_000), Delivery(user0, 2_000), Delivery(user1, 3_000)]
    baseline = {0: 5, 1: 0, 2: 5, 3: 0}
    events = [
        ExistsEvent(0, 6, 1_500),
        ExistsEvent(0, 7, 2_100),
        ExistsEvent(2, 7, 2_400),  # coalesced: one EXISTS covers both deliveries
        ExistsEvent(1, 1, 2_900),  # arrived before the LMTP reply was read
    ]
    latencies, missed = match_latencies(deliveries, specs, baseline, events)
    assert sorted(latencies) == sorted([500, 1_400, 100, 400, -100])
    assert missed == 1  # session 3 never heard about user1's message


def test_sessions_that_never_idled_are_not_counted() -> None:
    specs = _specs(2, 1)
    latencies, missed = match_latencies([Delivery(specs[0].user, 0)], specs, {1: 0}, [])
    assert (latencies, missed) == ([], 1)


def test_stale_exists_does_not_count_as_notification() -> None:
    specs = _specs(1, 1)
    events = [ExistsEvent(0, 3, 10)]  # the SELECT-time count, repeated, is not news
    assert match_latencies([Delivery(specs[0].user, 0)], specs, {0: 3}, events) == ([], 1)


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 99) == 7


def test_latency_figures_in_ms() -> None:
    figures = latency_figures([2_000_000, 1_000_000, -1_000_000], missed=2)
    assert figures["pairs"] == 5 and figures["missed"] == 2
    assert figures["p50_ms"] == 1.0 and figures["max_ms"] == 2.0
    assert figures["before_reply"] == 1
    assert "p50_ms" not in latency_figures([], missed=3)


def test_ratio_is_dovecot_over_pushmail_and_skips_missing() -> None:
    push = {"p50_ms": 2.0, "p99_ms": 0, "rss_per_session_kb": 10.0}
    dove = {"p50_ms": 500.0, "p99_ms": 900.0, "rss_per_session_kb": None}
    assert ratios(push, dove) == {"p50": 250.0}


def test_protocol_times_exists_split_across_reads() -> None:
    events: list[ExistsEvent] = []
    closed: set[int] = set()
    proto = IdleProtocol(7, events, closed)
    proto.idling = True
    proto.data_received(b"* 4 EXI")
    proto.data_received(b"STS\r\n* 1 RECENT\r\n* 5 EXISTS\r\n* OK Still here\r\n")
    assert [(e.sid, e.exists) for e in events] == [(7, 4), (7, 5)]
    proto.connection_lost(None)
    assert closed == {7}


class _Wire(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))


def test_protocol_sets_itself_up_line_by_line() -> None:
    async def scenario() -> tuple[list[bytes], asyncio.Future[int], IdleProtocol]:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        proto = IdleProtocol(1, [], set(), None, ("u@x", 'p"w'), ready)
        wire = _Wire()
        proto.connection_made(wire)
        proto.data_received(b"* OK hi\r\n")
        proto.data_received(b"a OK in\r\n* 2 EXISTS\r\n* OK [UIDNEXT 3] x\r\nb OK done\r")
        assert not ready.done() and not proto.idling
        proto.data_received(b"\n+ idling\r\n")
        return wire.sent, ready, proto

    sent, ready, proto = asyncio.run(scenario())
    assert sent == [b'a LOGIN "u@x" "p\\"w"\r\n', b"b SELECT INBOX\r\n", b"c IDLE\r\n"]
    assert ready.result() == 2 and proto.idling


def test_protocol_setup_failures() -> None:
    async def scenario(replies: bytes, lost: bool = False) -> BaseException | None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        proto = IdleProtocol(1, [], set(), None, ("u", "p"), ready)
        proto.connection_made(_Wire())
        proto.data_received(replies)
        if lost:
            proto.connection_lost(None)
        return ready.exception() if ready.done() else None

    login = asyncio.run(scenario(b"* OK\r\na NO [AUTHENTICATIONFAILED] no\r\n"))
    assert isinstance(login, PermissionError)
    select = asyncio.run(scenario(b"* OK\r\na OK\r\nb NO no such mailbox\r\n"))
    assert isinstance(select, RuntimeError) and "SELECT" in str(select)
    closed = asyncio.run(scenario(b"* OK\r\n", lost=True))
    assert isinstance(closed, ConnectionError)


def test_quote_escapes() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


def test_tree_memory_sees_children_and_kill_spares_reused_pids() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        assert child.pid in proctools.descendants(os.getpid())
        memory = proctools.tree_memory(child.pid)
        assert memory.processes == 1 and memory.pss_kb > 0 and memory.rss_kb >= memory.pss_kb
        snapshot = proctools.snapshot_tree(child.pid)
        proctools.kill_snapshot([(pid, started + 1) for pid, started in snapshot])
        assert child.poll() is None  # different start time: not our process, untouched
        proctools.kill_snapshot(snapshot)
        assert child.wait(5) == -9
    finally:
        child.kill()
        child.wait()


def test_dovecot_config_is_accepted_by_doveconf(tmp_path: Path) -> None:
    if shutil.which("doveconf") is None or os.geteuid() != 0:
        pytest.skip("needs root and an installed dovecot")
    tmp_path.chmod(0o755)
    inst = dovecot.DovecotInstance(tmp_path, [("a@b.test", "pw")], sessions=3000)
    inst.write_config()
    out = subprocess.run(
        ["doveconf", "-c", str(inst.config_path), "-n"], capture_output=True, text=True, check=True
    )
    assert "Warning" not in out.stderr
    assert f"port = {inst.imap_port}" in out.stdout
    assert "mail_max_userip_connections = 3010" in out.stdout


def _run_bench(*argv: str) -> dict[str, object]:
    script = Path(__file__).with_name("idle_latency.py")
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _check_side(side: object, n: int) -> None:
    assert isinstance(side, dict)
    assert side["sessions_ready"] == n and side["missed"] == 0
    assert side["pairs"] == 12
    assert isinstance(side["p50_ms"], float) and side["p50_ms"] <= side["max_ms"]
    assert isinstance(side["pss_per_session_kb"], float)


SMALL = ("--n", "30", "--users", "5", "--messages", "2", "--settle", "0.5", "--grace", "5")


def test_dovecot_end_to_end() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("installing and running Dovecot needs root on Debian")
    result = _run_bench(*SMALL, "--skip-pushmail")
    _check_side(result["dovecot"], 30)
    assert "pushmail" not in result and "ratio" not in result


def test_pushmail_end_to_end() -> None:
    if importlib.util.find_spec("pushmail.cli") is None:
        pytest.skip("pushmail.cli not written yet")
    result = _run_bench(*SMALL, "--skip-dovecot")
    _check_side(result["pushmail"], 30)
