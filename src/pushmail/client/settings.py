"""``watch.toml``: the push client's configuration, loaded strictly into frozen dataclasses.

Like the server's config, an unknown key or a wrong type is an error naming the key
(a misspelt ``quiet_hours`` silently ignored would wake someone at 3 a.m.). Every key
is documented in ``docs/watch.md``. The file is read again on SIGHUP; only a file that
loads completely replaces the running configuration.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushmail.client.connection import Endpoint, normalize_fingerprint
from pushmail.client.timespec import parse_quiet_hours, parse_when
from pushmail.config import ConfigError

__all__ = [
    "Account",
    "Download",
    "Hook",
    "Rule",
    "WatchConfig",
    "WatchConfigError",
    "default_config_path",
    "load_watch_config",
]

MODES = ("auto", "notify", "idle", "poll")
TLS_MODES = ("none", "tls", "starttls")
HOOK_TYPES = ("command", "webhook", "desktop")
ACTIONS = ("notify", "ignore")


class WatchConfigError(ConfigError):
    """watch.toml is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    host: str
    username: str
    port: int = 993
    tls: str = "tls"
    verify_tls: bool = True
    ca_file: Path | None = None  # trust this CA bundle instead of the system's
    tls_fingerprint: str = ""  # "sha256:AB:CD:…": trust exactly this certificate
    password: str = field(default="", repr=False)
    password_file: Path | None = None
    password_command: str = ""
    folders: tuple[str, ...] = ("INBOX",)
    mode: str = "auto"
    # Under NOTIFY, the folder kept selected: its new mail comes with UID and headers
    # in the push itself. "" (or a folder not in ``folders``): none, all by STATUS.
    notify_selected: str = "INBOX"
    idle_renew: float = 300.0  # DONE + IDLE this often (< NAT timeouts, < autologout)
    # Learn the renewal interval per network instead (client/keepalive_learn.py),
    # between these bounds; idle_renew is then unused.
    keepalive_learn: bool = True
    keepalive_min: float = 60.0
    keepalive_max: float = 1740.0
    response_timeout: float = 30.0  # deadline for connect, each command, DONE, LOGOUT
    server_keepalive: float = 0.0  # the server's keepalive interval while idling; 0 unknown
    grace: float = 30.0  # added to server_keepalive before silence means "dead"
    tcp_keepalive: float = 120.0  # TCP keepalive idle time; 0 leaves the OS default
    poll_interval: float = 120.0  # when neither NOTIFY nor IDLE is used
    max_idle_connections: int = 5  # one IDLE per folder up to this; more folders are polled
    backoff_min: float = 1.0
    backoff_max: float = 300.0
    busy_backoff: float = 600.0  # least wait after "too many connections"

    def endpoint(self) -> Endpoint:
        pin = normalize_fingerprint(self.tls_fingerprint) if self.tls_fingerprint else ""
        return Endpoint(self.host, self.port, self.tls, self.verify_tls, self.ca_file, pin)

    def secret(self) -> str:
        """The password, from the first of password / password_file / password_command."""
        if self.password:
            return self.password
        if self.password_file is not None:
            return self.password_file.read_text().strip("\r\n")
        if self.password_command:
            out = subprocess.run(
                self.password_command, shell=True, capture_output=True, text=True, timeout=60
            )
            return out.stdout.strip("\r\n")
        return ""


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches when every given field matches (case-insensitive glob, ``*`` ``?``)."""

    action: str = "notify"
    from_: str = ""
    to: str = ""
    subject: str = ""
    list_id: str = ""
    folder: str = ""
    account: str = ""


@dataclass(frozen=True, slots=True)
class Hook:
    type: str
    command: str = ""  # type = "command": run with sh -c
    url: str = ""  # type = "webhook": POST JSON
    timeout: float = 30.0
    headers: tuple[str, ...] = ()  # "Name: value" lines for the webhook


@dataclass(frozen=True, slots=True)
class Download:
    enabled: bool = False
    dir: Path = Path("maildir")
    max_size: int = 1 << 20  # whole messages up to this many bytes
    partial_bytes: int = 4096  # above it: headers and this much of the first text part


@dataclass(frozen=True, slots=True)
class WatchConfig:
    state_dir: Path
    accounts: tuple[Account, ...]
    rules: tuple[Rule, ...] = ()
    default_action: str = "notify"
    vip: tuple[str, ...] = ()
    quiet_hours: tuple[str, ...] = ()  # "22:00-07:00", local time
    mute_until: str = ""  # ISO date-time, local time unless an offset is given
    notify_backlog: bool = False
    backlog_limit: int = 50
    debounce: float = 2.0
    log: str = "-"  # JSON lines: "-" for stdout, else a file path
    hooks: tuple[Hook, ...] = ()
    download: Download = field(default_factory=Download)
    heartbeat_slack: float = 0.0  # renewals due within this many seconds share a wakeup


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/pushmail/watch.toml`` (``~/.config`` when unset), used when
    ``--config`` is not given."""
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "pushmail" / "watch.toml"


def load_watch_config(path: Path) -> WatchConfig:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise WatchConfigError(f"cannot read {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise WatchConfigError(f"{path}: invalid TOML: {e}") from e
    try:
        return _watch_config(data, path.resolve().parent)
    except WatchConfigError as e:
        raise WatchConfigError(f"{path}: {e}") from None


def _watch_config(data: dict[str, Any], base: Path) -> WatchConfig:
    data = dict(data)
    accounts = data.pop("account", [])
    rules = data.pop("rule", [])
    hooks = data.pop("hook", [])
    download = data.pop("download", {})
    state_dir = data.pop("state_dir", str(_default_state_dir()))
    if not isinstance(accounts, list) or not accounts:
        raise WatchConfigError("at least one [[account]] is required")
    built_accounts = tuple(
        _build(Account, a, f"account[{i}].", base) for i, a in enumerate(accounts)
    )
    names = [a.name for a in built_accounts]
    if len(set(names)) != len(names):
        raise WatchConfigError("account names must be unique")
    for a in built_accounts:
        _check_account(a)
    config: WatchConfig = _build(
        WatchConfig,
        {
            **data,
            "state_dir": state_dir,
            "accounts": built_accounts,
            "rules": tuple(
                _build(Rule, _rule_keys(r), f"rule[{i}].", base) for i, r in enumerate(rules)
            ),
            "hooks": tuple(_build(Hook, h, f"hook[{i}].", base) for i, h in enumerate(hooks)),
            "download": _build(
                Download, {"dir": str(Path(state_dir) / "maildir"), **download}, "download.", base
            ),
        },
        "",
        base,
    )
    _check(config)
    return config


def _default_state_dir() -> Path:
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(root) / "pushmail-watch"


def _rule_keys(raw: Any) -> Any:
    if isinstance(raw, dict) and "from" in raw:
        raw = {("from_" if k == "from" else k): v for k, v in raw.items()}
    return raw


def _check_account(a: Account) -> None:
    where = f"account {a.name!r}"
    if a.mode not in MODES:
        raise WatchConfigError(f"{where}: mode must be one of {', '.join(MODES)}")
    if a.tls not in TLS_MODES:
        raise WatchConfigError(f"{where}: tls must be one of {', '.join(TLS_MODES)}")
    if not a.folders:
        raise WatchConfigError(f"{where}: folders is empty")
    for key in ("idle_renew", "response_timeout", "poll_interval", "backoff_min", "backoff_max",
                "keepalive_min", "keepalive_max"):  # fmt: skip
        if getattr(a, key) <= 0:
            raise WatchConfigError(f"{where}: {key} must be positive")
    if a.keepalive_min > a.keepalive_max:
        raise WatchConfigError(f"{where}: keepalive_min is above keepalive_max")
    if a.max_idle_connections < 0 or not 0 < a.port < 65536:
        raise WatchConfigError(f"{where}: port or max_idle_connections out of range")
    _check_trust(a, where)


def _check_trust(a: Account, where: str) -> None:
    if a.tls_fingerprint:
        try:
            normalize_fingerprint(a.tls_fingerprint)
        except ValueError as e:
            raise WatchConfigError(f"{where}: tls_fingerprint: {e}") from None
    if (a.tls_fingerprint or a.ca_file is not None) and a.tls == "none":
        raise WatchConfigError(f"{where}: ca_file and tls_fingerprint need tls or starttls")


def _check(c: WatchConfig) -> None:
    if c.default_action not in ACTIONS:
        raise WatchConfigError(f"default_action must be one of {', '.join(ACTIONS)}")
    for r in c.rules:
        if r.action not in ACTIONS:
            raise WatchConfigError(f"rule action must be one of {', '.join(ACTIONS)}")
    for h in c.hooks:
        if h.type not in HOOK_TYPES:
            raise WatchConfigError(f"hook type must be one of {', '.join(HOOK_TYPES)}")
        if (h.type == "command" and not h.command) or (h.type == "webhook" and not h.url):
            raise WatchConfigError(
                f"a {h.type} hook needs {'command' if h.type == 'command' else 'url'}"
            )
    try:
        for q in c.quiet_hours:
            parse_quiet_hours(q)
        if c.mute_until:
            parse_when(c.mute_until)
    except ValueError as e:
        raise WatchConfigError(str(e)) from None


# -------------------------------------------------------------------------- building


def _build(cls: type[Any], data: Any, prefix: str, base: Path) -> Any:
    if not isinstance(data, dict):
        raise WatchConfigError(f"{prefix.rstrip('.')}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            shown = "from" if key == "from_" else key
            raise WatchConfigError(f"unknown key {prefix}{shown}")
        values[key] = _convert(f"{prefix}{key}", hints[key], raw, base)
    try:
        return cls(**values)
    except TypeError as e:
        raise WatchConfigError(f"{prefix.rstrip('.')}: missing key ({e})") from None


def _convert(name: str, hint: Any, raw: Any, base: Path) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):  # X | None
        if raw is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(raw, bool):
            raise WatchConfigError(f"{name}: expected true or false")
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise WatchConfigError(f"{name}: expected an integer")
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise WatchConfigError(f"{name}: expected a number")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise WatchConfigError(f"{name}: expected a string")
        return raw
    if hint is Path:
        if not isinstance(raw, str):
            raise WatchConfigError(f"{name}: expected a path")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base / path
    if origin is tuple and typing.get_args(hint)[0] is str:
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise WatchConfigError(f"{name}: expected a list of strings")
        return tuple(raw)
    return raw  # already-built tables (accounts, rules, hooks, download)
