"""Every key ``watch.toml`` accepts is documented in docs/watch.md (the issue asks for
it, and a key added to the code but not to the table would be invisible to users).
The accepted keys come from the config dataclasses, which the loader checks against."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pushmail.client.settings import Account, Download, Hook, Rule, WatchConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "watch.md"
# Dataclass field -> the key as written in watch.toml, where they differ.
TOML_NAME = {"from_": "from", "accounts": "[[account]]", "rules": "[[rule]]",
             "hooks": "[[hook]]", "download": "[download]"}  # fmt: skip


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n#", start + len(heading))
    return text[start : nxt if nxt > 0 else len(text)]


@pytest.mark.parametrize(
    ("cls", "heading"),
    [
        (WatchConfig, "### Top level"),
        (Rule, "### `[[rule]]`"),
        (Hook, "### `[[hook]]`"),
        (Download, "### `[download]`"),
        (Account, "### `[[account]]`"),
    ],
)
def test_every_key_is_in_its_table(cls: type, heading: str) -> None:
    section = _section(DOC.read_text(), heading)
    # Keys are the backticked words of the table rows' first column.
    documented = set()
    for row in section.splitlines():
        if row.startswith("| "):
            documented |= set(re.findall(r"`([^`]+)`", row.split(" | ")[0]))
    missing = [
        TOML_NAME.get(f.name, f.name)
        for f in dataclasses.fields(cls)
        if TOML_NAME.get(f.name, f.name) not in documented
    ]
    assert not missing, f"undocumented in {heading}: {missing}"
