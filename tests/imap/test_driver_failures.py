"""A bug in a command (an exception no handler expected) ends that session with
``* BYE internal server error``, is logged, and leaves other sessions working."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pushmail.imap import commands as c
from pushmail.imap import handlers
from pushmail.imap.command_table import COMMANDS, CommandTable
from pushmail.imap.session import Session
from pushmail.store.interfaces import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, live_server


def test_unexpected_error_ends_only_that_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(s: Session, cmd: c.Namespace, store: Store) -> None:
        raise RuntimeError("a bug")

    rows = {**COMMANDS.rows, "NAMESPACE": replace(COMMANDS.rows["NAMESPACE"], handler=broken)}
    monkeypatch.setattr(handlers, "COMMANDS", CommandTable(rows.values()))
    with live_server(tmp_path) as srv, LineClient(srv.port) as other, LineClient(srv.port) as c1:
        other.login()
        c1.login()
        c1.send(b"n1 NAMESPACE\r\n")
        assert c1.line() == b"* BYE internal server error"
        assert c1.sock.recv(100) == b""  # closed
        assert other.command("s", "SELECT INBOX")[-1].startswith(b"s OK")
    assert any("internal error in session" in r.getMessage() for r in caplog.records)
