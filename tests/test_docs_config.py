"""Every TOML snippet in docs/ (and the README) loads with the real loader, and every
setting the prose names (``limits.max_line``, ``[imap_settings] hibernate``) exists."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pushmail.client.settings import load_watch_config
from pushmail.config import _TABLES, Config, load_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.S)
# `table.key` and `[table] key` in backticks, for the server's tables
NAMED_KEY = re.compile(r"`(?:\[(\w+)\] |(\w+)\.)(\w+)`")
FILE_SUFFIXES = {"sqlite3", "pem", "toml", "json", "md", "py", "jsonl", "png"}  # push.sqlite3


def _snippets() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, block in enumerate(TOML_BLOCK.findall(doc.read_text())):
            out.append((f"{doc.name}#{i + 1}", block))
    return out


SNIPPETS = _snippets()


def test_snippets_are_found() -> None:
    names = {name.split("#")[0] for name, _ in SNIPPETS}
    assert {"configuration.md", "operations.md", "watch.md"} <= names


@pytest.mark.parametrize(("where", "text"), SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_toml_snippet_loads(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "snippet.toml"
    path.write_text(text)
    if where.startswith("watch.md"):  # the push client's own file (docs/watch.md)
        load_watch_config(path)
    else:
        load_config(path)


def _server_keys() -> dict[str, set[str]]:
    keys = {t: {f.name for f in dataclasses.fields(cls)} for t, cls in _TABLES.items()}
    keys[""] = {f.name for f in dataclasses.fields(Config)}
    return keys


def test_settings_named_in_prose_exist() -> None:
    keys = _server_keys()
    wrong = []
    for doc in DOCS:
        for bracketed, dotted, key in NAMED_KEY.findall(doc.read_text()):
            table = bracketed or dotted
            if dotted and key in FILE_SUFFIXES:
                continue
            if bracketed and table not in keys:
                wrong.append(f"{doc.name}: [{table}] {key} (no such table)")
            elif table in keys and key not in keys[table]:
                wrong.append(f"{doc.name}: {table}.{key}")
    assert not wrong, wrong
