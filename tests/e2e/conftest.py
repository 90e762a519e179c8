"""End-to-end fixtures: a real ``pushmail serve`` process on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    srv.add_user("bob@example.org", "bob-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if os.environ.get("PUSHMAIL_SHOW_LOG"):
            print((srv.data_dir / "server.log").read_text())
