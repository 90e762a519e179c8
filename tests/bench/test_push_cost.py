"""The push-cost benchmark at its minimum scale, so that it cannot rot (issue 20).

It needs root, ``ip`` (iproute2) and raw sockets: it builds a network namespace and
counts packets on a veth pair. Without them it is skipped, except in CI (CI=true),
where that is a failure. Only structure and plain physical facts are asserted, never
time: each step was measured, and bytes add up the way TCP/TLS make them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import cost_model  # noqa: E402
from wire_capture import MTU, parse_frame  # noqa: E402


def _frame(payload: int, tcp_options: int = 12) -> bytes:
    ihl, thl = 20, 20 + tcp_options
    total = ihl + thl + payload
    ip = bytes([0x45, 0]) + total.to_bytes(2, "big") + bytes(5) + b"\x06" + bytes(10)
    tcp = (1234).to_bytes(2, "big") + (993).to_bytes(2, "big") + bytes(8)
    tcp += bytes([(thl // 4) << 4, 0x18]) + bytes(thl - 14)
    return bytes(12) + b"\x08\x00" + ip + tcp + bytes(payload)


def test_a_gso_super_packet_counts_as_the_segments_it_stands_for() -> None:
    small = parse_frame(_frame(100), up=True, at=0.0)
    assert small is not None and small.segments == 1 and small.wire == 152
    big = parse_frame(_frame(5000), up=False, at=0.0)
    mss = MTU - 52
    assert big is not None and big.segments == -(-5000 // mss) == 4
    assert big.wire == 5000 + 4 * 52


def test_renewals_follow_poisson_gaps() -> None:
    assert cost_model.renewals_per_day(0, 10) == 144
    assert cost_model.renewals_per_day(0.001, 10) == pytest.approx(144, rel=0.01)
    assert cost_model.renewals_per_day(1000, 10) < 1.0  # gaps of 10 min are rare


def _can_capture() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces and raw sockets"
    if shutil.which("ip") is None:
        return "needs `ip` (iproute2)"
    return None


def test_quick_measurement_end_to_end() -> None:
    why = _can_capture()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"push_cost cannot run in CI: {why}")
        pytest.skip(why)
    done = subprocess.run(
        [sys.executable, str(BENCH / "push_cost.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    u = result["units"]
    # Every unit was measured, and each is at least one packet's headers.
    for name, value in u.items():
        assert value >= 40, (name, value)
    # A TCP keepalive probe and its ACK carry no payload: two bare headers.
    assert result["measured"]["keepalive"]["tcp_keepalive_probe"]["packets"] == 2
    # DONE + tagged OK + IDLE + "+" is four TLS records more than a bare probe.
    assert u["keepalive_client_done_idle"] > u["keepalive_tcp_probe"]
    # The resumed handshake really was resumed; the full one was not.
    rec = result["measured"]["reconnect"]
    assert rec["resumed_login"]["tls_resumed"] and not rec["full_login"]["tls_resumed"]
    # A reconnect costs more than a keepalive cycle, and the Web Push body was the
    # real RFC 8291 payload (the receiver decrypted it).
    assert u["reconnect_full"] > 4 * u["keepalive_client_done_idle"]
    assert result["measured"]["alerts"]["warm"]["webpush"]["decrypted"]
    table = result["break_even_msgs_per_day"]
    assert set(table) >= {"2min", "5min", "15min", "30min"}
    # A longer NAT timeout means fewer renewals, so true push pays off at fewer messages.
    assert table["30min"]["idle_vs_true_push"] < table["2min"]["idle_vs_true_push"]
