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

from pathlib import Path

from pushmail.backend_urls import (
    StoreKind,
    StoreUrl,
    StoreUrlError,
    parse_store_url,
    sqlite_url,
)
from pushmail.store.interfaces import Store

__all__ = [
    "StoreKind",
    "StoreUrl",
    "StoreUrlError",
    "open_store",
    "parse_store_url",
    "sqlite_path",
    "sqlite_url",
    "store_kind",
]


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
