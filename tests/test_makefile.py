"""``make run`` installs only what running needs, and only once (stamp files)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(target: str, venv: Path) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make not installed")
    r = subprocess.run(
        [make, "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_run_installs_the_package_without_test_tools_once(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    first = _dry_run("run", venv)
    assert "pip install -q -e ." in first and "[test]" not in first
    assert "pushmail demo-user" in first and "pushmail serve" in first
    stamp = venv / ".stamp-run"
    stamp.touch()
    future = (ROOT / "pyproject.toml").stat().st_mtime + 10
    os.utime(stamp, (future, future))
    again = _dry_run("run", venv)
    assert "pip" not in again, again
    assert "pushmail serve" in again


def test_make_test_installs_the_test_tools_once(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    assert "pip install -q -e '.[test]'" in _dry_run("venv", venv)
    stamp = venv / ".stamp-test"
    stamp.touch()
    future = (ROOT / "pyproject.toml").stat().st_mtime + 10
    os.utime(stamp, (future, future))
    assert "pip" not in _dry_run("venv", venv)
