"""Store backends under test: every test in ``test_conformance.py`` runs on each.

A backend is a factory of store objects on one location, so tests can simulate a
restart (close, open again) and two processes (two objects at once). PostgreSQL
joins by adding a param here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pushmail.store.interfaces import Store
from pushmail.store.sqlite import SqliteStore

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    opened: list[Store] = []

    def factory() -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "store.sqlite3")
        else:  # pragma: no cover - future backends
            raise AssertionError(request.param)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()  # closing twice is harmless


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()
