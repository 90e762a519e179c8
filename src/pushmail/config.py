"""Configuration: a TOML file (``--config``) loaded into frozen dataclasses; command-line
flags override it. Every key is documented in ``docs/configuration.md``.

Loading is strict: an unknown key or a value of the wrong type is a ``ConfigError``
naming the key, because a misspelt setting that is silently ignored (a listener the
operator believes is off, a limit they believe is set) is worse than a refusal to start.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushmail.backend_urls import (
    BusUrlError,
    StoreUrlError,
    parse_bus_url,
    parse_store_url,
    sqlite_url,
    unix_url,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Limits:
    max_line: int = 65536  # bytes of one command line, literals excluded
    max_literal: int = 50 * 1024 * 1024  # bytes of one literal (APPEND size cap)
    max_message: int = 50 * 1024 * 1024  # SMTP/LMTP DATA size cap
    max_bad_commands: int = 10  # BADs in a row before disconnecting
    max_auth_failures: int = 3  # failed logins before disconnecting
    auth_failure_delay: float = 1.0  # seconds, doubled per failure
    # Password guessing (auth/guard.py): failed logins a client address (IPv6: its
    # /64) and an account may make at once, and per second after that.
    login_client_burst: int = 10
    login_client_rate: float = 0.1
    login_account_burst: int = 10
    login_account_rate: float = 1 / 60
    login_trusted_burst: int = 20  # for an address that logged in recently
    login_trusted_rate: float = 0.2
    login_trust_seconds: float = 24 * 3600.0
    login_hash_queue: int = 4  # checks from untrusted addresses waiting for a thread
    # NOTIFY (RFC 5465 §5.8): different changes waiting to be reported to one session
    # before it is told NOTIFICATIONOVERFLOW and NOTIFY is turned off for it.
    notify_max_pending: int = 1000
    # Unsent output (bytes) above which a NOTIFY session's hints wait instead of
    # being rendered: a client that stops reading ends in NOTIFICATIONOVERFLOW.
    notify_max_output: int = 1024 * 1024
    max_mailbox_name: int = 255  # bytes (UTF-8) of a mailbox name, hierarchy included
    max_mailbox_depth: int = 16  # hierarchy levels of a mailbox name ("a/b/c" is 3)
    max_mailboxes: int = 1000  # mailboxes per user, INBOX included
    # One IMAP command, lines and literals together: after login (an APPEND may be
    # max_literal + max_line), and before login, where only LOGIN/AUTHENTICATE/ID
    # and the like are possible (this also caps a line there).
    max_command: int = 64 * 1024
    prelogin_max_command: int = 8 * 1024
    # Unsent output (bytes) above which a connection's next command waits.
    max_output: int = 256 * 1024
    # Connections one worker holds (all listeners); 0: its descriptor limit less a
    # reserve for the store, the bus and outgoing requests (transport/conncap.py).
    max_connections: int = 0
    max_prelogin_per_address: int = 500  # IMAP connections not yet logged in, per address
    prelogin_timeout: float = 60.0  # seconds to log in (IMAP, submission); 0 = off


@dataclass(frozen=True, slots=True)
class ImapSettings:
    autologout: float = 30 * 60.0  # seconds of inactivity; never below 30 min by default
    idle_keepalive: float = 10 * 60.0  # "* OK Still here" interval while idling; 0 = off
    recheck_interval: float = 60.0  # idle sessions re-read the store this often (lost hints)
    expunge_memory_days: int = 90  # how long expunged UIDs are kept for QRESYNC
    hibernate: bool = True  # idle sessions (plaintext, or TLS on our own record layer)
    # shrink to a small record (net/hibernate.py)
    home_workers: bool = True  # several workers: sleeping sessions move to one (net/homes.py)


@dataclass(frozen=True, slots=True)
class PushSettings:
    """True push: content-free alerts and the HTTP API / settings page (pushmail.push)."""

    http: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 8443))
    http_tls: bool = True  # plain HTTP is allowed only on a loopback address
    vapid_subject: str = "mailto:postmaster@localhost"  # contact for push services (RFC 8292)
    ttl: int = 300  # seconds a push service keeps an undelivered alert
    hold: float = 2.0  # seconds a new alert waits for more mail to merge into it
    min_interval: float = 30.0  # seconds between two alerts to one device
    lifetime: float = 3600.0  # seconds after which an unsent alert is given up
    request_timeout: float = 10.0  # seconds for one POST to an endpoint
    allow_http_endpoints: bool = False  # accept http:// endpoints (tests, trusted LANs)
    # Send alerts to loopback, private, link-local... addresses (push/destinations.py).
    allow_private_endpoints: bool = False
    # The HTTP listener's deadlines and caps (web/listener.py): slow or idle clients.
    http_tls_handshake_timeout: float = 10.0  # seconds for the TLS handshake
    http_header_timeout: float = 10.0  # seconds for a request's headers (also between requests)
    http_body_timeout: float = 30.0  # seconds for a request's body once its headers are in
    http_max_connections: int = 512  # open connections in all
    http_max_per_address: int = 32  # open connections from one client address


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./pushmail-data")
    hostname: str = "localhost"
    imap: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 1143))
    imaps: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 1993))
    smtp: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 2525))
    submission: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 1587))
    lmtp: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 2424))
    tls_cert: Path | None = None  # PEM; a self-signed pair is made in data_dir if unset
    tls_key: Path | None = None
    lmtp_socket: Path | None = None  # also serve LMTP on this Unix socket
    socketmap: Endpoint | None = None  # recipient look-ups for Postfix (smtp/socketmap.py)
    # Prometheus metrics over HTTP (pushmail.metrics); "off" to disable the listener.
    metrics: Endpoint | None = field(default_factory=lambda: Endpoint("127.0.0.1", 9154))
    domains: tuple[str, ...] = ()  # local mail domains besides those of existing users
    # A bare name (``alice``) in a login, an LMTP recipient or ``user add/import``
    # means ``alice@<default_domain>`` (Dovecot's auth_default_realm); unset: unchanged.
    default_domain: str | None = None
    # Where mail for ``postmaster`` and ``postmaster@<local domain>`` goes (RFC 5321
    # §4.5.1); unset: such mail is refused with 550 and a warning is logged at start.
    postmaster: str | None = None
    limits: Limits = field(default_factory=Limits)
    imap_settings: ImapSettings = field(default_factory=ImapSettings)
    push: PushSettings = field(default_factory=PushSettings)
    # Where mail lives and how processes hear of changes, as URLs read only by
    # store/factory.open_store and events/factory.open_bus; unset: the SQLite file
    # and the socket directory in data_dir (``store_url``, ``bus_url``).
    store: str | None = None  # sqlite:///PATH or postgresql://HOST/DB
    bus: str | None = None  # unix:///DIR or nats://HOST:PORT[?prefix=NAME]
    log_level: str = "INFO"
    workers: int = 1  # serving processes sharing the ports (SO_REUSEPORT); 0 = one per CPU
    delivery_workers: int = 0  # of those, how many take SMTP/LMTP; 0 = one per CPU

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pushmail.sqlite3"

    @property
    def events_dir(self) -> Path:
        return self.data_dir / "events"

    @property
    def store_url(self) -> str:
        """The store to open: ``store``, or the SQLite file in ``data_dir``."""
        return self.store or sqlite_url(self.db_path)

    @property
    def bus_url(self) -> str:
        """The change bus: ``bus``, or the socket directory in ``data_dir``."""
        return self.bus or unix_url(self.events_dir)


class ConfigError(ValueError):
    """The configuration file or an override is invalid; the message names the key."""


OFF = "off"  # an endpoint value that disables the listener


def parse_endpoint(value: str) -> Endpoint | None:
    """``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) or ``off``; ValueError otherwise."""
    text = value.strip()
    if text.lower() == OFF:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT or {OFF!r}, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets: [{host}]:{port}")
    return Endpoint(host, int(port))


def load_config(path: Path | None, overrides: Mapping[str, object] | None = None) -> Config:
    """Read ``path`` (TOML; None for the defaults), then apply ``overrides``.

    Override keys are the file's keys, with a dot for a table (``"limits.max_message"``);
    a None value means "not given" and is skipped, so argparse results can be passed
    straight in. Relative paths in the file are relative to the file's directory;
    relative paths in overrides are relative to the working directory.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from e
        base = path.resolve().parent
    try:
        config = _build(Config, data, "", base)
        return _apply_overrides(config, overrides or {})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path is not None else str(e)) from None


# Settings tables: the key in the file -> its dataclass.
_TABLES: dict[str, type[Any]] = {
    "limits": Limits,
    "imap_settings": ImapSettings,
    "push": PushSettings,
}


def _build(cls: type[Any], data: Mapping[str, Any], prefix: str, base: Path) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        name = prefix + key
        f = known.get(key)
        if f is None:
            raise ConfigError(f"unknown key {name!r} (known: {', '.join(sorted(known))})")
        if key in _TABLES and not prefix:
            if not isinstance(raw, dict):
                raise ConfigError(f"{name!r} must be a table ([{key}])")
            values[key] = _build(_TABLES[key], raw, name + ".", base)
        else:
            values[key] = _convert(name, str(f.type), raw, base)
    return cls(**values)


def _apply_overrides(config: Config, overrides: Mapping[str, object]) -> Config:
    cwd = Path.cwd()
    for key, raw in overrides.items():
        if raw is None:
            continue
        table, dot, sub = key.partition(".")
        if not dot:
            updated = _build(Config, {key: raw}, "", cwd)
            config = dataclasses.replace(config, **{key: getattr(updated, key)})
            continue
        if table not in _TABLES:
            raise ConfigError(f"unknown table {table!r} in override {key!r}")
        current = getattr(config, table)
        updated = _build(_TABLES[table], {sub: raw}, table + ".", cwd)
        changed = dataclasses.replace(current, **{sub: getattr(updated, sub)})
        config = dataclasses.replace(config, **{table: changed})
    return config


def _convert(name: str, annotation: str, raw: Any, base: Path) -> Any:
    """Check and convert one value by its field's annotation (or, for the few keys
    with a narrower domain than their type, by its name)."""
    try:
        converter = _NAMED.get(name) or _CONVERTERS[annotation]
        return converter(raw, base)
    except KeyError:
        raise ConfigError(f"{name!r}: unsupported type {annotation}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name!r}: {e}") from None


def _to_int(raw: Any, base: Path) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError(f"expected an integer, got {raw!r}")
    if raw < 0:
        raise ValueError(f"must not be negative, got {raw}")
    return raw


def _to_bool(raw: Any, base: Path) -> bool:
    if not isinstance(raw, bool):
        raise TypeError(f"expected true or false, got {raw!r}")
    return raw


def _to_float(raw: Any, base: Path) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError(f"expected a number, got {raw!r}")
    if raw < 0:
        raise ValueError(f"must not be negative, got {raw}")
    return float(raw)


def _to_str(raw: Any, base: Path) -> str:
    if not isinstance(raw, str) or not raw:
        raise TypeError(f"expected a non-empty string, got {raw!r}")
    return raw


def _to_optional_str(raw: Any, base: Path) -> str | None:
    return None if raw is False or raw == "" else _to_str(raw, base).lower()


def _to_postmaster(raw: Any, base: Path) -> str | None:
    value = _to_optional_str(raw, base)
    if value is not None and "@" not in value.strip("@"):
        raise ValueError(f"expected a full address (user@domain), got {raw!r}")
    return value


def _to_domain(raw: Any, base: Path) -> str | None:
    value = _to_optional_str(raw, base)
    if value is not None and ("@" in value or not value.strip()):
        raise ValueError(f"expected a domain name, got {raw!r}")
    return value


def _to_path(raw: Any, base: Path) -> Path:
    if isinstance(raw, Path):
        return raw
    return base / Path(_to_str(raw, base)).expanduser()


def _to_optional_path(raw: Any, base: Path) -> Path | None:
    return None if raw is False or raw == "" else _to_path(raw, base)


def _to_endpoint(raw: Any, base: Path) -> Endpoint | None:
    if raw is False or isinstance(raw, Endpoint):
        return raw or None
    return parse_endpoint(_to_str(raw, base))


def _to_str_tuple(raw: Any, base: Path) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise TypeError(f"expected a list of strings, got {raw!r}")
    return tuple(_to_str(item, base).lower() for item in raw)


def _to_log_level(raw: Any, base: Path) -> str:
    level = _to_str(raw, base).upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def _to_store_url(raw: Any, base: Path) -> str | None:
    if raw is False or raw == "":
        return None
    try:
        return parse_store_url(_to_str(raw, base), base).url
    except StoreUrlError as e:
        raise ValueError(str(e)) from None


def _to_bus_url(raw: Any, base: Path) -> str | None:
    if raw is False or raw == "":
        return None
    try:
        return parse_bus_url(_to_str(raw, base), base).url
    except BusUrlError as e:
        raise ValueError(str(e)) from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_NAMED: dict[str, Any] = {
    "log_level": _to_log_level,
    "postmaster": _to_postmaster,
    "default_domain": _to_domain,
    "store": _to_store_url,
    "bus": _to_bus_url,
}

_CONVERTERS: dict[str, Any] = {
    "int": _to_int,
    "bool": _to_bool,
    "float": _to_float,
    "str": _to_str,
    "str | None": _to_optional_str,
    "Path": _to_path,
    "Path | None": _to_optional_path,
    "Endpoint | None": _to_endpoint,
    "tuple[str, ...]": _to_str_tuple,
}
