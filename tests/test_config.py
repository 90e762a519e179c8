"""Config loading: every key, defaults, overrides, and clear errors for bad input."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pushmail.config import (
    Config,
    ConfigError,
    Endpoint,
    ImapSettings,
    Limits,
    PushSettings,
    load_config,
    parse_endpoint,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pushmail.toml"
    path.write_text(text)
    return path


def test_no_file_no_overrides_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(None, {}) == Config()


def test_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
data_dir = "data"
hostname = "mail.example.org"
imap = "0.0.0.0:143"
imaps = "[::1]:993"
smtp = "off"
submission = false
lmtp = "127.0.0.1:24"
lmtp_socket = "/run/pushmail/lmtp.sock"
tls_cert = "certs/fullchain.pem"
tls_key = "/etc/ssl/private/key.pem"
domains = ["Example.org", "example.net"]
log_level = "debug"

[limits]
max_line = 1000
max_literal = 2000
max_message = 3000
max_bad_commands = 4
max_auth_failures = 5
auth_failure_delay = 0.5

[imap_settings]
autologout = 1800
idle_keepalive = 0
recheck_interval = 30.5
expunge_memory_days = 7
""",
    )
    config = load_config(path, {})
    assert config == Config(
        data_dir=tmp_path / "data",
        hostname="mail.example.org",
        imap=Endpoint("0.0.0.0", 143),
        imaps=Endpoint("::1", 993),
        smtp=None,
        submission=None,
        lmtp=Endpoint("127.0.0.1", 24),
        lmtp_socket=Path("/run/pushmail/lmtp.sock"),
        tls_cert=tmp_path / "certs" / "fullchain.pem",
        tls_key=Path("/etc/ssl/private/key.pem"),
        domains=("example.org", "example.net"),
        log_level="DEBUG",
        limits=Limits(
            max_line=1000,
            max_literal=2000,
            max_message=3000,
            max_bad_commands=4,
            max_auth_failures=5,
            auth_failure_delay=0.5,
        ),
        imap_settings=ImapSettings(1800.0, 0.0, 30.5, 7),
    )


def test_partial_table_keeps_other_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[limits]\nmax_message = 10\n"), {})
    assert config.limits == Limits(max_message=10)
    assert config.imap_settings == ImapSettings()


def test_overrides_win_and_none_means_not_given(tmp_path: Path) -> None:
    path = write(tmp_path, 'hostname = "a.example"\nsmtp = "127.0.0.1:25"\n')
    config = load_config(
        path,
        {
            "data_dir": "rel/dir",
            "smtp": "off",
            "imap": "127.0.0.1:0",
            "hostname": None,
            "limits.max_message": 42,
            "imap_settings.autologout": 60,
        },
    )
    assert config.hostname == "a.example"
    assert config.smtp is None
    assert config.imap == Endpoint("127.0.0.1", 0)
    assert config.data_dir == Path.cwd() / "rel/dir"
    assert config.limits.max_message == 42
    assert config.imap_settings.autologout == 60.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hostnme = 'x'", "unknown key 'hostnme'"),
        ("[limits]\nmax_mesage = 1", "unknown key 'limits.max_mesage'"),
        ("[smtp]\nport = 25", "'smtp'"),
        ("limits = 3", "'limits' must be a table"),
        ("[limits]\nmax_message = '10'", "'limits.max_message': expected an integer"),
        ("[limits]\nmax_message = true", "'limits.max_message': expected an integer"),
        ("[limits]\nmax_message = -1", "must not be negative"),
        ("[imap_settings]\nautologout = 'soon'", "expected a number"),
        ("smtp = '127.0.0.1'", "expected HOST:PORT"),
        ("smtp = '127.0.0.1:99999'", "expected HOST:PORT"),
        ("smtp = '::1:25'", "brackets"),
        ("smtp = 25", "expected a non-empty string"),
        ("domains = 'example.org'", "expected a list of strings"),
        ("log_level = 'LOUD'", "expected one of"),
        ("hostname = ''", "non-empty string"),
        ("hostname = [", "invalid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path, {})
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml", {})


@pytest.mark.parametrize(
    ("key", "value"),
    [("nonsense", 1), ("limits.nonsense", 1), ("nope.max_line", 1), ("smtp", "x")],
)
def test_bad_overrides(key: str, value: object) -> None:
    with pytest.raises(ConfigError):
        load_config(None, {key: value})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:25", Endpoint("127.0.0.1", 25)),
        ("[::]:143", Endpoint("::", 143)),
        ("localhost:0", Endpoint("localhost", 0)),
        ("OFF", None),
    ],
)
def test_parse_endpoint(text: str, expected: Endpoint | None) -> None:
    assert parse_endpoint(text) == expected


def test_every_key_is_documented() -> None:
    """docs/configuration.md has a table row for every key the loader accepts."""
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", DOCS.read_text(), re.MULTILINE))
    tables = ("limits", "imap_settings", "push")
    keys = {f.name for f in dataclasses.fields(Config) if f.name not in tables}
    keys |= {f"limits.{f.name}" for f in dataclasses.fields(Limits)}
    keys |= {f"imap_settings.{f.name}" for f in dataclasses.fields(ImapSettings)}
    keys |= {f"push.{f.name}" for f in dataclasses.fields(PushSettings)}
    assert documented == keys
