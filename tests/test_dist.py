"""The files for a packaged install (dist/): the systemd unit, sysusers/tmpfiles
snippets and the example /etc/pushmail/pushmail.toml, and ``pip install .`` into a
fresh virtual environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pushmail.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"


def _unit() -> dict[str, list[str]]:
    """The unit's directives: key -> every value given."""
    out: dict[str, list[str]] = {}
    for line in (DIST / "pushmail.service").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_example_config_loads_with_the_real_loader() -> None:
    config = load_config(DIST / "pushmail.toml")
    unit = _unit()
    assert str(config.data_dir) in unit["ReadWritePaths"]
    assert config.socketmap is not None and config.socketmap.host == "127.0.0.1"
    assert config.lmtp is not None and config.lmtp.host == "127.0.0.1"
    # the unit reads the file the example says it is
    assert "--config /etc/pushmail/pushmail.toml" in unit["ExecStart"][0]


def test_unit_is_sandboxed_and_runs_as_its_own_user() -> None:
    unit = _unit()
    for key, value in {
        "User": "pushmail",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
    }.items():
        assert unit.get(key) == [value], key
    assert int(unit["LimitNOFILE"][0]) >= 65536
    sysusers = (DIST / "pushmail.sysusers").read_text()
    assert re.search(r"^u pushmail - .* /var/lib/pushmail$", sysusers, re.M)
    tmpfiles = (DIST / "pushmail.tmpfiles").read_text()
    assert re.search(r"^d /var/lib/pushmail 0700 pushmail pushmail -$", tmpfiles, re.M)


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt-get install -y systemd)")
    pushmail = Path(sys.executable).parent / "pushmail"
    text = (DIST / "pushmail.service").read_text()
    # ExecStart must name an executable that exists here
    unit = tmp_path / "pushmail.service"
    unit.write_text(text.replace("/opt/pushmail/bin/pushmail", str(pushmail)))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if "pushmail" in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


def test_pip_install_in_a_fresh_venv_gives_a_working_pushmail(tmp_path: Path) -> None:
    """Built from a copy of the sources, so no build/ or egg-info lands in the tree;
    pip's cache and local wheels make the dependencies cheap."""
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(src)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(
        [str(venv / "bin" / "pushmail"), "--help"], capture_output=True, text=True, timeout=60,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for command in ("serve", "user", "backup", "restore", "alerts", "watch"):
        assert command in r.stdout
    # package data: the settings page ships with the package
    check = (
        "import pushmail.web, pathlib; "
        "static = pathlib.Path(pushmail.web.__file__).parent / 'static'; "
        "print(sorted(p.name for p in static.iterdir()))"
    )
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check], capture_output=True, text=True,
        timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0 and "index.html" in r.stdout, r.stdout + r.stderr
