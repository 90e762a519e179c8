"""Issue 15 item 9: a \\Recent claim that fails (the disk is full) during SELECT does
not end the session; SELECT answers from what it could read."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from pushmail.store.sqlite_base import SqliteBase

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, live_server


def test_select_survives_a_failed_recent_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = {"on": False}
    real = SqliteBase._begin_immediate

    def begin(self: SqliteBase, wait: bool) -> None:
        if full["on"]:  # what SQLite says when the file cannot grow
            raise sqlite3.OperationalError("database or disk is full")
        real(self, wait)

    monkeypatch.setattr(SqliteBase, "_begin_immediate", begin)
    with live_server(tmp_path) as srv:
        srv.deliver(subject="one")
        srv.deliver(subject="two")
        with LineClient(srv.port) as c1:
            c1.login()
            full["on"] = True
            reply = c1.command("s1", "SELECT INBOX")
            assert reply[-1].startswith(b"s1 OK"), reply
            assert b"* 2 EXISTS" in reply
            assert b"* 0 RECENT" in reply  # nothing could be claimed
            assert c1.command("n1", "NOOP")[-1].startswith(b"n1 OK")  # still there
            full["on"] = False
        with LineClient(srv.port) as c2:  # the claim was not lost: still \Recent
            c2.login()
            reply = c2.command("s2", "SELECT INBOX")
            assert b"* 2 RECENT" in reply, reply
