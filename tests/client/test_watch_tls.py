"""Trusting pushmail's own certificate (``ca_file``, a ``tls_fingerprint`` pin,
``pushmail watch fingerprint``), a certificate that fails verification stopping the
account once instead of retrying, and the default config path — all through
``pushmail watch`` processes against a real pushmail server over TLS."""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import WAIT, ConfiguredServer, Watch, deliver


def _cert_path(server: ConfiguredServer) -> Path:
    return server.data_dir / "tls-cert.pem"


def _cert_fingerprint(server: ConfiguredServer) -> str:
    der = ssl.PEM_cert_to_DER_cert(_cert_path(server).read_text())
    return hashlib.sha256(der).hexdigest()


def _pushmail(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pushmail", *args],
        capture_output=True, text=True, timeout=WAIT, env=env,
    )  # fmt: skip


def _run_to_exit(w: Watch) -> int:
    """Run the watcher until it gives up by itself (it must: the account stops)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pushmail", "watch", "--config", str(w.config)],
        capture_output=True, timeout=WAIT,
    )  # fmt: skip
    return proc.returncode


def test_ca_file_trusts_pushmails_own_certificate(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(server.imaps, account={"tls": "tls", "ca_file": str(_cert_path(server))})
    w.start()
    deliver(server, "over verified tls")
    w.wait_subjects("over verified tls")
    assert w.count("certificate_rejected") == 0


def test_starttls_with_ca_file(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(server.imap, account={"tls": "starttls", "ca_file": str(_cert_path(server))})
    w.start()
    deliver(server, "over starttls")
    w.wait_subjects("over starttls")


def test_fingerprint_command_and_pin(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    r = _pushmail("watch", "fingerprint", "127.0.0.1", str(server.imaps))
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith('tls_fingerprint = "sha256:'), line
    pin = line.split('"')[1]
    assert pin.removeprefix("sha256:").replace(":", "").lower() == _cert_fingerprint(server)
    r2 = _pushmail("watch", "--starttls", "fingerprint", "127.0.0.1", str(server.imap))
    assert r2.returncode == 0 and r2.stdout.strip() == line, r2.stderr

    w = watch_factory(server.imaps, account={"tls": "tls", "tls_fingerprint": pin})
    w.start()
    deliver(server, "over pinned tls")
    w.wait_subjects("over pinned tls")


def test_untrusted_certificate_stops_the_account_once(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    # The system's CAs do not know the self-signed certificate: permanent, not retried.
    w = watch_factory(server.imaps, account={"tls": "tls"})
    assert _run_to_exit(w) == 77
    rejected = [e for e in w.events() if e["event"] == "certificate_rejected"]
    assert len(rejected) == 1, w.events()
    assert "not trusted" in rejected[0]["error"] and "ca_file" in rejected[0]["error"]
    assert w.count("disconnected") == 0 and w.count("auth_failed") == 0


def test_wrong_pin_stops_the_account_once(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    wrong = "sha256:" + ":".join(["AB"] * 32)
    w = watch_factory(server.imaps, account={"tls": "tls", "tls_fingerprint": wrong})
    assert _run_to_exit(w) == 77
    rejected = [e for e in w.events() if e["event"] == "certificate_rejected"]
    assert len(rejected) == 1, w.events()
    assert "does not match tls_fingerprint" in rejected[0]["error"]
    assert w.count("disconnected") == 0


def test_bad_trust_settings(tmp_path: Path, server: ConfiguredServer) -> None:
    w = Watch(tmp_path, server.imaps, account={"tls": "tls", "tls_fingerprint": "sha256:0g"})
    r = w.cli("unmute")
    assert r.returncode == 78 and "tls_fingerprint" in r.stderr, r.stderr
    w.write_config(server.imaps, account={"tls": "none", "ca_file": str(_cert_path(server))})
    r = w.cli("unmute")
    assert r.returncode == 78 and "need tls or starttls" in r.stderr, r.stderr
    # A ca_file that cannot be read is found when connecting (it may be put in place
    # after the config is written): one event, the account stops.
    w.write_config(server.imaps, account={"tls": "tls", "ca_file": str(tmp_path / "no.pem")})
    assert _run_to_exit(w) == 77
    rejected = [e for e in w.events() if e["event"] == "certificate_rejected"]
    assert len(rejected) == 1 and "cannot load ca_file" in rejected[0]["error"], w.events()


def test_mute_without_config_uses_the_xdg_path(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    r = _pushmail("watch", "mute", "2h", env=env)
    assert r.returncode == 78 and str(tmp_path / "xdg" / "pushmail" / "watch.toml") in r.stderr

    w = Watch(tmp_path, 993)
    default = tmp_path / "xdg" / "pushmail" / "watch.toml"
    default.parent.mkdir(parents=True)
    default.write_text(w.config.read_text())
    r = _pushmail("watch", "mute", "2h", env=env)
    assert r.returncode == 0 and "muted until" in r.stdout, r.stderr
    from pushmail.client.rules import read_mute

    assert read_mute(w.dir / "state") is not None  # written to that config's state_dir
    # ~/.config when XDG_CONFIG_HOME is unset
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env["HOME"] = str(tmp_path / "home")
    r = _pushmail("watch", "unmute", env=env)
    assert r.returncode == 78
    assert str(tmp_path / "home" / ".config" / "pushmail" / "watch.toml") in r.stderr
