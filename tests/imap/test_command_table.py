"""The command table, checked for every (state, command) pair against an expectation
written out from the RFCs' "valid states" (not derived from the table itself); and
that the parser, the state check and the dispatch all read that one table."""

from __future__ import annotations

import subprocess
import sys
import typing
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pushmail.imap import commands as c
from pushmail.imap import handlers
from pushmail.imap.client_encode import encode_command
from pushmail.imap.command_table import COMMANDS, CommandTable, Flag, Row, check_allowed
from pushmail.imap.errors import ProtocolError
from pushmail.imap.parser import bare
from pushmail.imap.session import ServerInfo, Session, State
from pushmail.imap.types import Secret, SeqRange, SequenceSet
from pushmail.store.interfaces import Store
from pushmail.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_session_harness import Client, store  # noqa: F401 (a fixture)

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
    (c.GetQuota("t", "GETQUOTA", ""), "GETQUOTA", {A, S}),
    (c.GetQuota("t", "GETQUOTAROOT", "INBOX"), "GETQUOTAROOT", {A, S}),
    (c.GetQuota("t", "SETQUOTA", "", (("STORAGE", 1),)), "SETQUOTA", {A, S}),
    (c.Metadata("t", "GETMETADATA", "", ("/private/x",), maxsize=10, depth="1"), "GETMETADATA",
     {A, S}),
    (c.Metadata("t", "SETMETADATA", "x", values=(("/shared/a", b"\x00"), ("/private/b", None))),
     "SETMETADATA", {A, S}),
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
    (c.Sort("t", (c.SortCriterion("DATE"),), "UTF-8", c.SearchAll()), "SORT", {S}),
    (c.Sort("t", (c.SortCriterion("SUBJECT", True),), "UTF-8", c.SearchAll(), uid=True),
     "UID SORT", {S}),
    (c.Thread("t", "REFERENCES", "UTF-8", c.SearchAll()), "THREAD", {S}),
    (c.Thread("t", "ORDEREDSUBJECT", "US-ASCII", c.SearchAll(), uid=True), "UID THREAD", {S}),
    (c.Fetch("t", ONE, ("FLAGS",)), "FETCH", {S}),
    (c.Fetch("t", ONE, ("FLAGS",), uid=True), "UID FETCH", {S}),
    (c.StoreFlags("t", ONE, "add", ()), "STORE", {S}),
    (c.StoreFlags("t", ONE, "add", (), uid=True), "UID STORE", {S}),
    (c.Copy("t", ONE, "x"), "COPY", {S}),
    (c.Copy("t", ONE, "x", uid=True), "UID COPY", {S}),
    (c.Copy("t", ONE, "x", move=True), "MOVE", {S}),
    (c.Copy("t", ONE, "x", uid=True, move=True), "UID MOVE", {S}),
]

SEQNUM_COMMANDS = {"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "SORT", "THREAD"}

PAIRS = [(cmd, name, allowed, state) for cmd, name, allowed in EXPECTED for state in State]


@pytest.mark.parametrize(
    ("cmd", "name", "allowed", "state"), PAIRS, ids=[f"{p[1]}-{p[3].name}" for p in PAIRS]
)
def test_every_state_command_pair(
    cmd: c.Command, name: str, allowed: set[State], state: State
) -> None:
    assert cmd.name == name
    if state in allowed:
        assert check_allowed(state, cmd) is COMMANDS.rows[name]
    else:
        with pytest.raises(ProtocolError, match="not allowed in this state"):
            check_allowed(state, cmd)


def test_every_command_has_exactly_one_row() -> None:
    """One row per command as on the wire, and no row that no command reaches.
    Every command class is reached: a class with variants (SELECT/EXAMINE, UID
    FETCH ...) has one row per variant, and each value names exactly one row."""
    assert sorted(name for _, name, _ in EXPECTED) == sorted(COMMANDS.rows)
    assert {type(cmd) for cmd, _, _ in EXPECTED} == set(typing.get_args(c.Command))
    for cmd, _, _ in EXPECTED:
        assert [row for row in COMMANDS.rows.values() if row.name == cmd.name] == [
            COMMANDS.row_of(cmd)
        ]
    with pytest.raises(AttributeError):  # not a command: a programming error, not input
        COMMANDS.row_of(ONE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two rows"):
        CommandTable([*COMMANDS.rows.values(), COMMANDS.rows["NOOP"]])


@pytest.mark.parametrize(("cmd", "name", "allowed"), EXPECTED, ids=[e[1] for e in EXPECTED])
def test_each_row_parses_its_own_command(cmd: c.Command, name: str, allowed: set[State]) -> None:
    """The parser reads the row's rule: what the client encoder writes for a value of
    the row's command comes back as that value, under that row's name."""
    assert COMMANDS.parse(encode_command(cmd)) == cmd


@pytest.mark.parametrize(("cmd", "name", "allowed"), EXPECTED, ids=[e[1] for e in EXPECTED])
def test_seqnum_commands(cmd: c.Command, name: str, allowed: set[State]) -> None:
    flags = COMMANDS.row_of(cmd).flags
    assert (Flag.SEQNUMS in flags) == (name in SEQNUM_COMMANDS)
    # after MOVE the client may be told of expunges: MOVE sends its own (RFC 6851)
    assert COMMANDS.row_of(cmd).expunges_allowed() == (name not in SEQNUM_COMMANDS - {"MOVE"})


def test_new_layer_commands() -> None:
    """After these the bytes on the wire belong to TLS or DEFLATE: the driver reads
    no further until they are done (``Flag.NEW_LAYER``)."""
    layered = {r.name for r in COMMANDS.rows.values() if Flag.NEW_LAYER in r.flags}
    assert layered == {"STARTTLS", "COMPRESS"}


def test_transitions(store: SqliteStore) -> None:  # noqa: F811 (the fixture)
    """The states commands lead to, run through the real handlers."""
    cl = Client(store)
    assert cl.session.state is State.NOT_AUTHENTICATED
    cl.ok("a LOGIN alice@example.org alice-pw")
    assert cl.session.state is State.AUTHENTICATED
    cl.ok("b SELECT INBOX")
    assert cl.session.state is State.SELECTED
    cl.ok("c CLOSE")
    assert cl.session.state is State.AUTHENTICATED
    cl.ok("d EXAMINE INBOX")
    assert cl.session.state is State.SELECTED
    cl.ok("e UNSELECT")
    assert cl.session.state is State.AUTHENTICATED
    cl.ok("f NOOP")
    assert cl.session.state is State.AUTHENTICATED
    assert b"+ " in cl.send("g IDLE")  # the next line is DONE, not a command
    out = cl.send("h LOGOUT")  # the driver closes: no session is left in State.LOGOUT
    assert out.startswith(b"* BYE") and b"h OK" in out


# -- parser, state check and dispatch read this one table ---------------------


@dataclass(frozen=True, slots=True)
class _Probe:
    """A command no real row has, to show a row is all it takes."""

    tag: str
    name: typing.ClassVar[str] = "XPROBE"


def test_a_row_is_all_a_command_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def probe(s: Session, cmd: _Probe, _store: Store) -> None:
        ran.append(cmd.tag)
        s.ok(cmd.tag, "probed")

    row = Row("XPROBE", bare(_Probe), probe, frozenset({State.NOT_AUTHENTICATED}))  # type: ignore[arg-type]
    table = CommandTable([*COMMANDS.rows.values(), row])
    with pytest.raises(ProtocolError, match="unknown command XPROBE"):
        COMMANDS.parse(b"p XPROBE\r\n")
    cmd = table.parse(b"p XPROBE\r\n")  # the parser: the row's rule
    assert cmd == _Probe("p")
    assert table.check_allowed(State.NOT_AUTHENTICATED, cmd) is row  # the state check
    with pytest.raises(ProtocolError, match="not allowed"):
        table.check_allowed(State.AUTHENTICATED, cmd)
    monkeypatch.setattr(handlers, "COMMANDS", table)  # what the driver runs through
    session = Session(ServerInfo(), secure=True, loopback=True)
    _action, out, _events = handlers.run_command(session, cmd, None)  # type: ignore[arg-type]
    assert ran == ["p"] and out == b"p OK probed\r\n"


def test_dispatch_runs_the_rows_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a row's handler in a table is what changes what runs."""
    ran: list[c.Command] = []

    def noop(s: Session, cmd: c.Noop, _store: Store) -> None:
        ran.append(cmd)
        s.ok(cmd.tag, "replaced")

    rows = {**COMMANDS.rows, "NOOP": replace(COMMANDS.rows["NOOP"], handler=noop)}
    monkeypatch.setattr(handlers, "COMMANDS", CommandTable(rows.values()))
    session = Session(ServerInfo(), secure=True, loopback=True)
    _action, out, _events = handlers.run_command(session, c.Noop("n"), None)  # type: ignore[arg-type]
    assert ran == [c.Noop("n")] and out == b"n OK replaced\r\n"


def test_the_parser_imports_no_io_and_no_session_layer() -> None:
    """The table names the handlers; the parser is handed the rules, so importing the
    core (parser, fragmentizer, encoders, command types) pulls in no I/O module and
    nothing of the session layer behind the handlers. A fresh interpreter, so what
    other tests imported does not count."""
    probe = (
        "import sys\n"
        "import pushmail.imap.parser, pushmail.imap.fragmentizer, pushmail.imap.encoder\n"
        "import pushmail.imap.commands, pushmail.imap.client_encode\n"
        "io = {'asyncio', 'socket', 'ssl', 'selectors', 'sqlite3'}\n"
        "layer = ('pushmail.imap.session', 'pushmail.imap.command_table',\n"
        "         'pushmail.imap.handlers', 'pushmail.imap.cmd_', 'pushmail.net',\n"
        "         'pushmail.store.sqlite', 'pushmail.events')\n"
        "print(sorted(m for m in sys.modules if m in io or m.startswith(layer)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
