"""``open_push_db``: the one place the push database's implementations are built.

The push database follows the mail store: with the store in PostgreSQL it is tables
of their own in the same database (several nodes share devices, rules, the queue
and the secrets); otherwise it is ``push.sqlite3`` in the data directory, as it has
always been.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pushmail.backend_urls import parse_store_url
from pushmail.push.db import DB_FILE, PushDB

POSTGRES_SCHEMES = ("postgresql", "postgres")
# Seconds a node holds an alert it claimed before another node may send it: well
# beyond one POST's timeout, so that a live node never loses a claim it is using.
DEFAULT_LEASE = 120.0


def push_db_url(store_url: str | None, data_dir: Path) -> str:
    """Where the push database of a server whose mail store is ``store_url`` lives."""
    if store_url is not None and urlsplit(store_url).scheme in POSTGRES_SCHEMES:
        return store_url
    return f"sqlite://{(data_dir / DB_FILE).resolve()}"


def open_push_db(url: str, lease: float = DEFAULT_LEASE) -> PushDB:
    """Open the push database at ``url``: ``sqlite:///path`` or ``postgresql://…``
    (``lease``: see ``db_postgres.PostgresPushDB``)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from pushmail.push.db_sqlite import SqlitePushDB

        return SqlitePushDB(Path(unquote(parts.path)))
    if parts.scheme in POSTGRES_SCHEMES:
        from pushmail.push.db_postgres import PostgresPushDB

        # Without pushmail's own parameters (pool_max_size, pool_timeout), which libpq
        # refuses; the same string the store's pool is keyed by, so the two share it.
        return PostgresPushDB(parse_store_url(url).dsn, lease=lease)
    raise ValueError(f"no push database for a URL of scheme {parts.scheme!r}")
