"""A small real run of the watch-cost benchmark: one JSON line, both strategies.

Run with ``.venv/bin/pytest bench/test_watch_cost.py`` (it starts its own pushmail).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent / "watch_cost.py"
FIGURES = (
    "bytes_per_renewal",
    "bytes_per_server_keepalive",
    "bytes_per_idle_hour",
    "bytes_per_notified_message",
)


def test_one_json_line_with_notify_and_idle_figures() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "3", "--renewals", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    [line] = out.stdout.splitlines()
    result = json.loads(line)
    # The default mode really took the NOTIFY path against pushmail, and "idle" IDLE.
    assert result["default_strategy"] == "notify"
    assert result["notify"]["strategy"] == "notify"
    assert result["idle"]["strategy"] == "idle"
    for strategy in ("notify", "idle"):
        for key in FIGURES:
            assert result[strategy][key] > 0, (strategy, key)
    assert result["bytes_per_idle_hour"] == result["notify"]["bytes_per_idle_hour"]
    # A message costs more than one renewal on either path (it includes a FETCH).
    for strategy in ("notify", "idle"):
        figs = result[strategy]
        assert figs["bytes_per_notified_message"] > figs["bytes_per_renewal"]
