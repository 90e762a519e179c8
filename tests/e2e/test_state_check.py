"""The multi-session state checker (bench/state_check.py) for a few seconds against a
real ``pushmail serve``: several clients on the same mailboxes doing random STORE,
EXPUNGE, APPEND, COPY, MOVE, FETCH, SEARCH and IDLE, each checking its own model of
the mailbox after every response. Issue 14: zero errors."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from e2e_server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from state_check import run_check


def test_sessions_stay_consistent_under_random_commands(server: Server) -> None:
    figures = asyncio.run(
        run_check("127.0.0.1", server.imap, ("alice@example.org", "alice-secret"), 6, 4.0, seed=14)
    )
    print(figures)
    assert figures["errors"] == 0, figures["first_errors"]
    assert isinstance(figures["commands"], int) and figures["commands"] > 100, figures
