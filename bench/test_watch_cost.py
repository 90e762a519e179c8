"""A small real run of the watch-cost benchmark: one JSON line, both strategies, and
the issue's check (issue 21): per notified message the default strategy (NOTIFY, INBOX
kept selected) costs no more than one IDLE per folder, against pushmail and Dovecot.

Run with ``.venv/bin/pytest bench/test_watch_cost.py`` (it starts its own servers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent / "watch_cost.py"
FIGURES = (
    "bytes_per_renewal",
    "bytes_per_server_keepalive",
    "bytes_per_notified_message",
)


def _run(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "3", "--renewals", "2", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    [line] = out.stdout.splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


def _check_strategies(result: dict[str, Any]) -> None:
    # The default mode really took the NOTIFY path, and "idle" IDLE.
    assert result["default_strategy"] == "notify"
    assert result["notify"]["strategy"] == "notify"
    assert result["idle"]["strategy"] == "idle"
    for strategy in ("notify", "idle"):
        for key in FIGURES:
            assert result[strategy][key] > 0, (strategy, key)
    # A message costs more than one renewal on either path (its headers come with it).
    for strategy in ("notify", "idle"):
        figs = result[strategy]
        assert figs["bytes_per_notified_message"] > figs["bytes_per_renewal"]
    notify = result["notify"]["bytes_per_notified_message"]
    idle = result["idle"]["bytes_per_notified_message"]
    print(f"{result['server']}: notify {notify} B, idle {idle} B per notified message")
    assert notify <= idle


def test_one_json_line_with_notify_and_idle_figures() -> None:
    result = _run()
    assert result["server"] == "pushmail"
    _check_strategies(result)
    assert result["notify"]["bytes_per_idle_hour"] > 0
    assert result["bytes_per_idle_hour"] == result["notify"]["bytes_per_idle_hour"]


def test_against_dovecot_too() -> None:
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/lmtp").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Dovecot is not installed (.ci/run installs dovecot-imapd/-lmtpd)")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    if os.geteuid() != 0:
        pytest.skip("a private Dovecot needs root (its processes switch to a mail user)")
    result = _run("--server", "dovecot")
    assert result["server"] == "dovecot" and result["version"]
    _check_strategies(result)
