"""Scratch PostgreSQL databases for tests: each test gets a database of its own,
created on the server of ``PUSHMAIL_TEST_POSTGRES`` (default: the local one, trust
auth) and dropped afterwards. Without a reachable server the test is skipped with
the reason, or fails when ``CI=true`` (CI runs PostgreSQL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get(
    "PUSHMAIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

_unreachable: list[str] = []  # the reason, once found (checked once per run)


def require_postgres() -> None:
    """Skip (or fail in CI) unless psycopg is installed and the server answers."""
    reason = _problem()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(reason)


def _problem() -> str | None:
    if _unreachable:
        return _unreachable[0] or None
    try:
        import psycopg
    except ImportError:
        _unreachable.append("psycopg is not installed (pip install -e '.[postgres]')")
        return _unreachable[0]
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unreachable.append(f"no PostgreSQL at {ADMIN_URL}: {exc}".strip())
        return _unreachable[0]
    _unreachable.append("")
    return None


def database_url(name: str) -> str:
    """``ADMIN_URL`` with its database replaced by ``name``."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def scratch_database() -> Iterator[str]:
    """Create an empty database with a unique name; yield its URL; drop it."""
    require_postgres()
    import psycopg

    name = f"pushmail_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
