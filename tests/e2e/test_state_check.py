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


def test_the_model_catches_each_kind_of_inconsistency() -> None:
    """The checker can fail: each rule of state_model.py on a made-up reply."""
    from state_model import MailboxModel

    def fed(*lines: bytes, uid: bool = False) -> list[str]:
        m = MailboxModel("t")
        m.begin_command(uid=uid)
        m.on_untagged(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $a)")
        m.on_untagged(b"* 3 EXISTS")
        m.on_untagged(b"* 1 FETCH (UID 10 FLAGS ($a) MODSEQ (5))")
        m.on_untagged(b"* 3 FETCH (UID 30 FLAGS ())")
        for line in lines:
            m.on_untagged(line)
        return [e.split(": ", 1)[1] for e in m.errors]

    assert fed() == []
    assert fed(b"* 2 FETCH (FLAGS ($b))") == ["message 2 shows keyword $b not in FLAGS"]
    assert fed(b"* 2 EXISTS")[0].startswith("EXISTS 2 below the 3 messages")
    assert fed(b"* 4 EXPUNGE") == ["EXPUNGE 4 with 3 messages"]
    assert fed(b"* 4 FETCH (FLAGS ())") == ["FETCH for message 4 with 3 messages"]
    assert fed(b"* 2 FETCH (UID 40)")[0].startswith("UIDs not ascending at message 3")
    assert fed(b"* 1 FETCH (UID 11)") == ["message 1 changed UID 10 -> 11"]
    assert fed(b"* 1 FETCH (MODSEQ (4))") == ["message 1 MODSEQ went down 5 -> 4"]
    assert fed(b"* VANISHED 20") == []  # message 2, whose UID was not known yet
    assert fed(b"* VANISHED 5") == ["VANISHED 5: no such message held"]
    assert fed(b"* SEARCH 1 4") == ["SEARCH returned message 4 with 3 messages"]
    assert fed(b"* SEARCH 10 31", uid=True) == ["UID SEARCH returned UID 31, not held"]
    assert fed(b"* 4 RECENT") == ["RECENT 4 above EXISTS 3"]
