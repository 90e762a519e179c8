"""The push database is chosen by URL, and built in one place (issue 16 item 4)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pushmail.push.db_open import open_push_db, push_db_url
from pushmail.push.db_sqlite import SqlitePushDB

SRC = Path(__file__).resolve().parents[2] / "src" / "pushmail"
CONCRETE = {"SqlitePushDB", "PostgresPushDB"}


def test_only_the_factory_constructs_a_push_database() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in CONCRETE:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found and all(f.startswith("push/db_open.py:") for f in found), found


def test_the_push_database_follows_the_store(tmp_path: Path) -> None:
    assert push_db_url(None, tmp_path) == f"sqlite://{(tmp_path / 'push.sqlite3').resolve()}"
    sqlite_store = f"sqlite://{tmp_path / 'pushmail.sqlite3'}"
    assert push_db_url(sqlite_store, tmp_path) == push_db_url(None, tmp_path)
    shared = "postgresql://pushmail@db.internal/pushmail"
    assert push_db_url(shared, tmp_path) == shared
    db = open_push_db(push_db_url(None, tmp_path))
    try:
        assert isinstance(db, SqlitePushDB)
        assert (tmp_path / "push.sqlite3").exists()
    finally:
        db.close()
    with pytest.raises(ValueError, match="scheme"):
        open_push_db("redis://127.0.0.1/0")
