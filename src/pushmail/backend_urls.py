"""Store and bus URLs (``store = "…"``, ``bus = "…"``): checked and normalised here,
with nothing but the standard library, so that the configuration can check them
when it loads without importing a store or a bus. ``store/factory.py`` and
``events/factory.py`` open what they name; the forms are documented there and in
docs/configuration.md, "Store and bus".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

StoreKind = Literal["sqlite", "postgresql"]


class StoreUrlError(ValueError):
    """A store URL this program cannot use; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class StoreUrl:
    kind: StoreKind
    url: str  # normalised: an SQLite path is absolute
    path: Path | None = None  # the SQLite file
    dsn: str = ""  # PostgreSQL: the URL for libpq, without pushmail's own parameters
    pool: dict[str, float] = field(default_factory=dict)  # pool_max_size, pool_timeout

    def __str__(self) -> str:
        return self.url


def sqlite_url(path: Path) -> str:
    """The URL of the SQLite store in the file ``path``."""
    return f"sqlite://{path.absolute()}"


def parse_store_url(url: str, base: Path | None = None) -> StoreUrl:
    """Check ``url`` and normalise it (a relative SQLite path against ``base``, by
    default the working directory); StoreUrlError otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise StoreUrlError(f"expected a store URL, got {url!r}")
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise StoreUrlError(f"expected a URL (sqlite:///PATH or postgresql://HOST/DB), got {url!r}")
    if scheme == "sqlite":
        return _sqlite(url, rest, base)
    if scheme in ("postgresql", "postgres"):
        return _postgresql(url)
    raise StoreUrlError(f"unknown store {scheme!r} in {url!r} (use sqlite: or postgresql:)")


def _sqlite(url: str, rest: str, base: Path | None) -> StoreUrl:
    if rest.startswith("//"):
        netloc, _, tail = rest[2:].partition("/")
        if netloc not in ("", "localhost"):
            raise StoreUrlError(f"an SQLite store is a local file: no host in {url!r}")
        raw = "/" + tail
    else:
        raw = rest
    if "?" in raw or "#" in raw:
        raise StoreUrlError(f"no query or fragment in an SQLite store URL: {url!r}")
    if raw in ("", "/"):
        raise StoreUrlError(f"no file in {url!r} (sqlite:///PATH/pushmail.sqlite3)")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return StoreUrl("sqlite", sqlite_url(path), path)


def _postgresql(url: str) -> StoreUrl:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as e:
        raise StoreUrlError(f"bad PostgreSQL URL {url!r}: {e}") from None
    if parts.fragment:
        raise StoreUrlError(f"no fragment in a PostgreSQL URL: {url!r}")
    pool: dict[str, float] = {}
    params = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in POOL_PARAMS:
            params.append((key, value))  # libpq's own (sslmode=, host=...): it checks them
            continue
        try:
            number = int(value) if key == "pool_max_size" else float(value)
        except ValueError:
            number = 0
        low, high = POOL_PARAMS[key]
        if not low <= number <= high:
            raise StoreUrlError(f"{key} must be from {low} to {high}, got {value!r} in {url!r}")
        pool[key] = number
    # Not geturl(): urlunsplit drops the "//" of a URL without a host, and libpq
    # does not take "postgresql:/mail" (a Unix-socket URL is "postgresql:///mail").
    query = urlencode(params)
    dsn = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
    return StoreUrl("postgresql", url, dsn=dsn, pool=pool)


# pushmail's own parameters of a PostgreSQL URL (not passed to libpq), and their
# bounds: the connections a process may hold, the seconds a call waits for one.
POOL_PARAMS: dict[str, tuple[float, float]] = {
    "pool_max_size": (1, 64),
    "pool_timeout": (0.1, 600),
}


BusKind = Literal["unix", "nats"]
DEFAULT_NATS_PREFIX = "default"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class BusUrlError(ValueError):
    """A bus URL this program cannot use; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class BusUrl:
    kind: BusKind
    url: str  # normalised: a socket directory is absolute
    path: Path | None = None  # unix: the sockets' directory
    server: str = ""  # nats: the server's URL, without the query
    prefix: str = DEFAULT_NATS_PREFIX

    def __str__(self) -> str:
        return self.url


def unix_url(path: Path) -> str:
    """The URL of the Unix-socket bus whose sockets are in ``path``."""
    return f"unix://{path.absolute()}"


def parse_bus_url(url: str, base: Path | None = None) -> BusUrl:
    """Check ``url`` and normalise it (a relative directory against ``base``, by
    default the working directory); BusUrlError otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise BusUrlError(f"expected a bus URL, got {url!r}")
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise BusUrlError(f"expected a URL (unix:///DIR or nats://HOST:PORT), got {url!r}")
    if scheme == "unix":
        return _unix(url, rest, base)
    if scheme in ("nats", "tls"):
        return _nats(url)
    raise BusUrlError(f"unknown bus {scheme!r} in {url!r} (use unix: or nats:)")


def _unix(url: str, rest: str, base: Path | None) -> BusUrl:
    if rest.startswith("//"):
        netloc, _, tail = rest[2:].partition("/")
        if netloc not in ("", "localhost"):
            raise BusUrlError(f"the Unix-socket bus is local: no host in {url!r}")
        raw = "/" + tail
    else:
        raw = rest
    if "?" in raw or "#" in raw:
        raise BusUrlError(f"no query or fragment in a unix: bus URL: {url!r}")
    if raw in ("", "/"):
        raise BusUrlError(f"no directory in {url!r} (unix:///PATH/events)")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return BusUrl("unix", unix_url(path), path)


def _nats(url: str) -> BusUrl:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise BusUrlError(f"bad NATS URL {url!r}: {e}") from None
    if not parts.hostname or port is None:
        raise BusUrlError(f"expected nats://HOST:PORT, got {url!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise BusUrlError(f"no path or fragment in a NATS URL: {url!r}")
    prefix = DEFAULT_NATS_PREFIX
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key != "prefix":
            raise BusUrlError(f"unknown parameter {key!r} in {url!r} (only prefix=)")
        if not _PREFIX_RE.fullmatch(value):
            raise BusUrlError(f"bad prefix {value!r} in {url!r}: letters, digits, _ - and .")
        prefix = value
    server = parts._replace(path="", query="", fragment="").geturl()
    return BusUrl("nats", url, server=server, prefix=prefix)
