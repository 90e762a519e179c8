"""The bus-latency benchmark at a small scale, so that it cannot rot (issue 17).

Needs the NATS server (skipped without it, failing in CI). Only what must hold is
asserted: both buses deliver every hint to the other process; times are printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "events"))

from nats_service import nats_url

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bus_latency.py"


def test_both_buses_deliver_every_hint_across_processes() -> None:
    url = nats_url()
    out = subprocess.run(
        [sys.executable, str(BENCH), "--count", "50", "--gap", "0.002", "--nats", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    print(result)
    for bus in ("unixsock", "nats"):
        assert result[bus]["hints"] == 50
        assert result[bus]["lost"] == 0
        assert 0 < result[bus]["p50_us"] <= result[bus]["p99_us"] <= result[bus]["max_us"]
