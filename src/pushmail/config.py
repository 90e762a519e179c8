"""Configuration: a TOML file (``--config``) loaded into frozen dataclasses; command-line
flags override it. Every key is documented in the README's configuration table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass(frozen=True, slots=True)
class ImapSettings:
    autologout: float = 30 * 60.0  # seconds of inactivity; never below 30 min by default
    idle_keepalive: float = 10 * 60.0  # "* OK Still here" interval while idling; 0 = off
    recheck_interval: float = 60.0  # idle sessions re-read the store this often (lost hints)
    expunge_memory_days: int = 90  # how long expunged UIDs are kept for QRESYNC


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
    limits: Limits = field(default_factory=Limits)
    imap_settings: ImapSettings = field(default_factory=ImapSettings)
    log_level: str = "INFO"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pushmail.sqlite3"

    @property
    def events_dir(self) -> Path:
        return self.data_dir / "events"
