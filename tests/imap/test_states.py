"""The command table, checked for every (state, command) pair against an expectation
written out from the RFCs' "valid states" (not derived from the table itself)."""

from __future__ import annotations

import pytest

from pushmail.imap import commands as c
from pushmail.imap.errors import ProtocolError
from pushmail.imap.states import (
    COMMAND_TABLE,
    State,
    check_allowed,
    command_name,
    spec_for,
    uses_seqnums,
)
from pushmail.imap.types import Secret, SeqRange, SequenceSet

N, A, S, L = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED, State.LOGOUT
ONE = SequenceSet((SeqRange(1, 1),))

# command, its wire name, the states where RFC 3501 / the extension allows it.
EXPECTED: list[tuple[c.Command, str, set[State]]] = [
    (c.Capability("t"), "CAPABILITY", {N, A, S}),
    (c.Noop("t"), "NOOP", {N, A, S}),
    (c.Logout("t"), "LOGOUT", {N, A, S}),
    (c.Id("t", None), "ID", {N, A, S}),
    (c.StartTLS("t"), "STARTTLS", {N}),
    (c.Authenticate("t", "PLAIN"), "AUTHENTICATE", {N}),
    (c.Login("t", "u", Secret("p")), "LOGIN", {N}),
    (c.Select("t", "x"), "SELECT", {A, S}),
    (c.Select("t", "x", readonly=True), "EXAMINE", {A, S}),
    (c.Create("t", "x"), "CREATE", {A, S}),
    (c.Delete("t", "x"), "DELETE", {A, S}),
    (c.Rename("t", "x", "y"), "RENAME", {A, S}),
    (c.Subscribe("t", "x"), "SUBSCRIBE", {A, S}),
    (c.Subscribe("t", "x", subscribe=False), "UNSUBSCRIBE", {A, S}),
    (c.ListCmd("t", "", ("%",)), "LIST", {A, S}),
    (c.ListCmd("t", "", ("%",), lsub=True), "LSUB", {A, S}),
    (c.Status("t", "x", ("MESSAGES",)), "STATUS", {A, S}),
    (c.Append("t", "x", b"m"), "APPEND", {A, S}),
    (c.Namespace("t"), "NAMESPACE", {A, S}),
    (c.Idle("t"), "IDLE", {A, S}),
    (c.Compress("t", "DEFLATE"), "COMPRESS", {A, S}),
    (c.Enable("t", ("CONDSTORE",)), "ENABLE", {A}),
    (c.Notify("t", None), "NOTIFY", {A, S}),
    (c.Check("t"), "CHECK", {S}),
    (c.Close("t"), "CLOSE", {S}),
    (c.Unselect("t"), "UNSELECT", {S}),
    (c.Expunge("t"), "EXPUNGE", {S}),
    (c.Expunge("t", ONE), "UID EXPUNGE", {S}),
    (c.Search("t", c.SearchAll()), "SEARCH", {S}),
    (c.Search("t", c.SearchAll(), uid=True), "UID SEARCH", {S}),
    (c.Fetch("t", ONE, ("FLAGS",)), "FETCH", {S}),
    (c.Fetch("t", ONE, ("FLAGS",), uid=True), "UID FETCH", {S}),
    (c.Store("t", ONE, "add", ()), "STORE", {S}),
    (c.Store("t", ONE, "add", (), uid=True), "UID STORE", {S}),
    (c.Copy("t", ONE, "x"), "COPY", {S}),
    (c.Copy("t", ONE, "x", uid=True), "UID COPY", {S}),
    (c.Copy("t", ONE, "x", move=True), "MOVE", {S}),
    (c.Copy("t", ONE, "x", uid=True, move=True), "UID MOVE", {S}),
]

SEQNUM_COMMANDS = {"FETCH", "STORE", "SEARCH", "COPY", "MOVE"}

PAIRS = [(cmd, name, allowed, state) for cmd, name, allowed in EXPECTED for state in State]


@pytest.mark.parametrize(
    ("cmd", "name", "allowed", "state"), PAIRS, ids=[f"{p[1]}-{p[3].name}" for p in PAIRS]
)
def test_every_state_command_pair(
    cmd: c.Command, name: str, allowed: set[State], state: State
) -> None:
    assert command_name(cmd) == name
    if state in allowed:
        check_allowed(state, cmd)
    else:
        with pytest.raises(ProtocolError, match="not allowed in this state"):
            check_allowed(state, cmd)


def test_every_table_row_is_reachable() -> None:
    assert {name for _, name, _ in EXPECTED} == set(COMMAND_TABLE)


@pytest.mark.parametrize(("cmd", "name", "allowed"), EXPECTED, ids=[e[1] for e in EXPECTED])
def test_seqnum_commands(cmd: c.Command, name: str, allowed: set[State]) -> None:
    assert uses_seqnums(cmd) == (name in SEQNUM_COMMANDS)


def test_raw_lines_and_transitions() -> None:
    assert spec_for(c.Idle("t")).raw_lines
    assert spec_for(c.Authenticate("t", "PLAIN")).raw_lines
    assert not spec_for(c.Login("t", "u", Secret("p"))).raw_lines
    assert spec_for(c.Login("t", "u", Secret("p"))).on_success is A
    assert spec_for(c.Select("t", "x")).on_success is S
    assert spec_for(c.Close("t")).on_success is A
    assert spec_for(c.Logout("t")).on_success is L
    assert spec_for(c.Noop("t")).on_success is None


def test_not_a_command_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        command_name(ONE)  # type: ignore[arg-type]
