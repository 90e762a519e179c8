"""Which store a process uses, chosen by URL: the one place that builds a store.

``store = "sqlite:///var/lib/pushmail/pushmail.sqlite3"`` is the embedded default
(one machine); ``store = "postgresql://host/db"`` the shared store of several nodes
(docs/cluster.md). Everything else asks ``open_store(url)`` and sees only the
``Store`` protocol, so no layer above imports an implementation (issue 16 item 4).
The implementations are imported when first opened: psycopg is an optional
dependency, and a process on SQLite never loads it.

URL forms (docs/configuration.md, "Store and bus"):

- ``sqlite:///ABSOLUTE/PATH`` or ``sqlite:RELATIVE/PATH`` (relative to the config
  file's directory; ``parse_store_url`` makes it absolute);
- ``postgresql://[user@]host[:port]/dbname[?param=value…]`` (a libpq URI;
  ``postgres://`` is taken too). Two parameters are pushmail's, not libpq's:
  ``pool_max_size`` (connections one process may hold, default 4) and
  ``pool_timeout`` (seconds a store call waits for one, default 10; then the
  call fails with ``StoreUnavailable``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pushmail.store.interfaces import Store

StoreKind = Literal["sqlite", "postgresql"]
SQLITE_FILE = "pushmail.sqlite3"  # the default store's file in data_dir


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
    dsn = parts._replace(query=urlencode(params)).geturl()
    return StoreUrl("postgresql", url, dsn=dsn, pool=pool)


# pushmail's own parameters of a PostgreSQL URL (not passed to libpq), and their
# bounds: the connections a process may hold, the seconds a call waits for one.
POOL_PARAMS: dict[str, tuple[float, float]] = {
    "pool_max_size": (1, 64),
    "pool_timeout": (0.1, 600),
}


def sqlite_path(url: str) -> Path | None:
    """The SQLite file of ``url``, None for another kind of store."""
    return parse_store_url(url).path


def open_store(url: str) -> Store:
    """A new store object for ``url`` (one per thread: a store object is used by one
    thread). SQLite creates or migrates the file; PostgreSQL the schema, and the
    process's objects share one small pool per URL (``store/pg_schema.py``)."""
    parsed = parse_store_url(url)
    if parsed.path is not None:
        from pushmail.store.sqlite import SqliteStore

        return SqliteStore(parsed.path)
    try:
        from pushmail.store.pg_schema import DEFAULT_POOL, PoolSettings
        from pushmail.store.postgres import PostgresStore
    except ImportError as e:  # psycopg is optional: pip install 'pushmail[postgres]'
        raise StoreUrlError(
            f"store {url!r} needs psycopg (pip install 'pushmail[postgres]'): {e}"
        ) from e
    settings = PoolSettings(
        int(parsed.pool.get("pool_max_size", DEFAULT_POOL.max_size)),
        parsed.pool.get("pool_timeout", DEFAULT_POOL.timeout),
    )
    return PostgresStore(parsed.dsn, settings=settings)


def store_kind(url: str) -> StoreKind:
    return parse_store_url(url).kind
