"""Store backends under test: every test in ``test_conformance.py`` runs on each.

A backend is a factory of store objects on one location, so tests can simulate a
restart (close, open again) and two processes (two objects at once). SQLite gets a
file in the test's directory, PostgreSQL a database of its own (``pg_testdb``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pg_testdb import scratch_database
from pushmail.store.interfaces import Store
from pushmail.store.sqlite import SqliteStore

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    opened: list[Store] = []
    with ExitStack() as stack:
        if request.param == "sqlite":

            def make() -> Store:
                return SqliteStore(tmp_path / "store.sqlite3")

        else:
            from pushmail.store.postgres import PostgresStore

            url = stack.enter_context(scratch_database())

            def make() -> Store:
                return PostgresStore(url)

        def factory() -> Store:
            store = make()
            opened.append(store)
            return store

        try:
            yield factory
        finally:
            for store in opened:
                store.close()  # closing twice is harmless


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()
