"""The cluster wake-up benchmark at a tiny scale, so that it cannot rot (issue 17).

Needs PostgreSQL and NATS (skipped without them, failing in CI). Only what must
hold is asserted: every delivery woke its idler in both set-ups; times are printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "events"))

from nats_service import nats_url

from pg_testdb import ADMIN_URL, require_postgres

BENCH = Path(__file__).resolve().parents[2] / "bench" / "cluster_wake.py"


def test_every_delivery_wakes_its_idler_in_both_set_ups() -> None:
    require_postgres()
    args = ["--count", "5", "--no-save", "--nats", nats_url(), "--postgres", ADMIN_URL]
    out = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    print(result)
    for setup in ("sqlite_one_node", "pg_nats_a_to_b"):
        assert result[setup]["n"] == 5
        assert result[setup]["p50_ms"] <= result[setup]["p99_ms"] <= result[setup]["max_ms"]
