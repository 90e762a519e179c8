"""``pushmail migrate --to postgresql://…``: move a server's SQLite store into
PostgreSQL so that its clients do not resync (issue 17).

The mail store is copied by ``store/pg_import.py`` (users, mailboxes, messages,
flags, keywords, UIDVALIDITY, UIDs, MODSEQs, expunge history, subscriptions) in one
PostgreSQL transaction into an empty database. The push database (devices, rules,
queued alerts) is copied by ``copy_push_database``, the hook for the push engine's
own move to PostgreSQL. Stop the server first: mail delivered during the copy
would stay behind in SQLite.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pushmail.config import Config, ConfigError, load_config
from pushmail.datadir import DataDirError, require_store
from pushmail.store.factory import StoreUrlError, parse_store_url, sqlite_path

log = logging.getLogger("pushmail.migrate")

EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_CONFIG = 0, 64, 65, 69, 78


class MigrateError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="copy the SQLite store into an empty PostgreSQL database",
    )
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://HOST/DBNAME")
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, {"data_dir": args.data_dir, "store": args.store})
        counts = migrate(config, args.to)
    except ConfigError as e:
        print(f"pushmail: {e}", file=sys.stderr)
        return EX_CONFIG
    except MigrateError as e:
        print(f"pushmail: {e}", file=sys.stderr)
        return e.code
    print("copied: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    print(f'now set store = "{args.to}" in the configuration of every node')
    return EX_OK


def migrate(config: Config, target: str) -> dict[str, int]:
    """Copy ``config``'s SQLite store (and push database) into ``target``; the rows
    copied per table."""
    source = sqlite_path(config.store_url)
    if source is None:
        raise MigrateError(f"the store {config.store_url} is not SQLite", EX_USAGE)
    try:
        parsed = parse_store_url(target)
        if parsed.kind != "postgresql":
            raise MigrateError(f"--to must be a postgresql:// URL, not {target!r}", EX_USAGE)
        require_store(config.data_dir, source)
    except StoreUrlError as e:
        raise MigrateError(f"--to: {e}", EX_USAGE) from None
    except DataDirError as e:
        raise MigrateError(str(e), e.code) from None
    try:
        import psycopg

        from pushmail.store.pg_import import TargetNotEmpty, import_sqlite
    except ImportError as e:
        raise MigrateError(
            f"needs psycopg (pip install 'pushmail[postgres]'): {e}", EX_UNAVAILABLE
        ) from e
    _refresh_structures(source)
    try:
        with psycopg.connect(parsed.dsn, autocommit=True, connect_timeout=10) as conn:
            counts = dict(import_sqlite(source, conn).counts)
    except TargetNotEmpty as e:
        raise MigrateError(f"{e}: migrate into a new, empty database", EX_DATAERR) from None
    except psycopg.OperationalError as e:
        raise MigrateError(f"cannot reach {target}: {e}", EX_UNAVAILABLE) from None
    counts.update(copy_push_database(config, target))
    return counts


def _refresh_structures(source: Path) -> None:
    """ENVELOPE/BODYSTRUCTURE computed by older code are redone before the copy:
    the PostgreSQL store keeps no structure version to redo them later."""
    from pushmail.imap.structure import STRUCTURE_VERSION, build_cache
    from pushmail.store.sqlite_refresh import refresh_structures

    refresh_structures(source, STRUCTURE_VERSION, build_cache)


def copy_push_database(config: Config, target: str) -> dict[str, int]:
    """Copy the push database (devices, rules, cursors, queued alerts, the shared
    keys) into ``target``: rows copied per table. A server that never ran the push
    engine has none, and nothing is copied."""
    import psycopg

    from pushmail.push.db import DB_FILE
    from pushmail.push.pg_import import import_push_sqlite

    dsn = parse_store_url(target).dsn
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            counts = import_push_sqlite(Path(config.data_dir) / DB_FILE, conn)
    except psycopg.OperationalError as e:
        raise MigrateError(f"cannot reach {target}: {e}", EX_UNAVAILABLE) from None
    return {f"push_{table}": n for table, n in counts.items()}
