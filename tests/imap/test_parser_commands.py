"""The parser, command by command: valid input as data, and the values it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pushmail.imap import commands as c
from pushmail.imap.command_table import parse_command
from pushmail.imap.parser import parse_tag
from pushmail.imap.types import DateTime, Secret, SeqRange, SequenceSet


def seq(*ranges: tuple[int | None, int | None] | int) -> SequenceSet:
    return SequenceSet(
        tuple(SeqRange(r, r) if isinstance(r, int) else SeqRange(*r) for r in ranges)
    )


PST = timezone(-timedelta(hours=8))

CASES: list[tuple[bytes, c.Command]] = [
    (b"a CAPABILITY", c.Capability("a")),
    (b"a capability", c.Capability("a")),
    (b"A001 NoOp", c.Noop("A001")),
    (b"a LOGOUT", c.Logout("a")),
    (b"a STARTTLS", c.StartTLS("a")),
    (b"a.b]c LOGOUT", c.Logout("a.b]c")),
    # AUTHENTICATE with and without SASL-IR
    (b"a AUTHENTICATE plain", c.Authenticate("a", "PLAIN")),
    (b"a AUTHENTICATE PLAIN =", c.Authenticate("a", "PLAIN", b"")),
    (b"a AUTHENTICATE PLAIN AGJvYgBwdw==", c.Authenticate("a", "PLAIN", b"\x00bob\x00pw")),
    # LOGIN: atoms, quoted, literals
    (b"a LOGIN bob secret", c.Login("a", "bob", Secret("secret"))),
    (b'a LOGIN "bob" "se \\"cr\\\\et"', c.Login("a", "bob", Secret('se "cr\\et'))),
    (b"a LOGIN {3}\r\nbob {4+}\r\np w\n", c.Login("a", "bob", Secret("p w\n"))),
    (b'a LOGIN "j\xc3\xb6rg" x', c.Login("a", "jörg", Secret("x"))),
    # SELECT / EXAMINE
    (b"a SELECT inbox", c.Select("a", "INBOX")),
    (b"a SELECT InBoX", c.Select("a", "INBOX")),
    (b'a EXAMINE "Sent Items"', c.Select("a", "Sent Items", readonly=True)),
    (b"a SELECT &ZeVnLIqe-", c.Select("a", "日本語")),
    (b"a SELECT x (CONDSTORE)", c.Select("a", "x", condstore=True)),
    (
        b"a SELECT x (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
        c.Select(
            "a",
            "x",
            qresync=c.QresyncParams(67890007, 20050715194045000, seq(41, (43, 211), (214, 541))),
        ),
    ),
    (
        b"a SELECT x (QRESYNC (1 2 (1:5 10:14)))",
        c.Select("a", "x", qresync=c.QresyncParams(1, 2, None, (seq((1, 5)), seq((10, 14))))),
    ),
    (
        b"a EXAMINE x (CONDSTORE QRESYNC (1 2 1:* (3 4)))",
        c.Select(
            "a",
            "x",
            readonly=True,
            condstore=True,
            qresync=c.QresyncParams(1, 2, seq((1, None)), (seq(3), seq(4))),
        ),
    ),
    # CREATE / DELETE / RENAME / SUBSCRIBE
    (b"a CREATE owatagusiam/", c.Create("a", "owatagusiam/")),
    (b"a CREATE Sent (USE (\\sent))", c.Create("a", "Sent", special_use=("\\Sent",))),
    (
        b"a CREATE x (USE (\\Junk \\Trash \\Xfoo))",
        c.Create("a", "x", ("\\Junk", "\\Trash", "\\Xfoo")),
    ),
    (b"a DELETE blurdybloop", c.Delete("a", "blurdybloop")),
    (b"a RENAME blurdybloop sarasoop", c.Rename("a", "blurdybloop", "sarasoop")),
    (b"a SUBSCRIBE #news.comp.mail.mime", c.Subscribe("a", "#news.comp.mail.mime")),
    (b"a UNSUBSCRIBE x", c.Subscribe("a", "x", subscribe=False)),
    # LIST / LSUB
    (b'a LIST "" ""', c.ListCmd("a", "", ("",))),
    (b"a LIST #news.comp.mail.misc %", c.ListCmd("a", "#news.comp.mail.misc", ("%",))),
    (b'a LIST "" *]x', c.ListCmd("a", "", ("*]x",))),
    (b'a LIST "" inbox', c.ListCmd("a", "", ("INBOX",))),
    (b"a LIST ~/Mail/ %", c.ListCmd("a", "~/Mail/", ("%",))),
    (
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" (INBOX "Foo*")',
        c.ListCmd("a", "", ("INBOX", "Foo*"), selection=("SUBSCRIBED", "RECURSIVEMATCH")),
    ),
    (
        b'a LIST "" % RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES unseen))',
        c.ListCmd(
            "a",
            "",
            ("%",),
            returns=("CHILDREN", "SPECIAL-USE"),
            status_items=("MESSAGES", "UNSEEN"),
        ),
    ),
    (b'a LIST () "" % RETURN ()', c.ListCmd("a", "", ("%",))),
    (b'a LSUB "#news." "comp.mail.*"', c.ListCmd("a", "#news.", ("comp.mail.*",), lsub=True)),
    # STATUS
    (
        b"a STATUS blurdybloop (UIDNEXT MESSAGES highestmodseq)",
        c.Status("a", "blurdybloop", ("UIDNEXT", "MESSAGES", "HIGHESTMODSEQ")),
    ),
    # APPEND
    (b"a APPEND saved-messages {5}\r\nHello", c.Append("a", "saved-messages", b"Hello")),
    (
        b'a APPEND x (\\Seen foo) " 7-Feb-1994 21:52:25 -0800" {3+}\r\nabc',
        c.Append(
            "a",
            "x",
            b"abc",
            ("\\Seen", "foo"),
            DateTime(datetime(1994, 2, 7, 21, 52, 25, tzinfo=PST)),
        ),
    ),
    (
        b'a APPEND x "17-Jul-1996 02:44:25 +0000" ~{3}\r\na\x00b',
        c.Append(
            "a",
            "x",
            b"a\x00b",
            internaldate=DateTime(datetime(1996, 7, 17, 2, 44, 25, tzinfo=UTC)),
        ),
    ),
    (b"a APPEND x () UTF8 (~{2}\r\nhi)", c.Append("a", "x", b"hi")),
    # selected-state simple commands
    (b"a CHECK", c.Check("a")),
    (b"a CLOSE", c.Close("a")),
    (b"a UNSELECT", c.Unselect("a")),
    (b"a EXPUNGE", c.Expunge("a")),
    (b"a UID EXPUNGE 3000:3002", c.Expunge("a", seq((3000, 3002)))),
    # COPY / MOVE
    (b"a COPY 2:4 MEETING", c.Copy("a", seq((2, 4)), "MEETING")),
    (b"a uid copy 1,* x", c.Copy("a", seq(1, (None, None)), "x", uid=True)),
    (b"a MOVE 1:* Trash", c.Copy("a", seq((1, None)), "Trash", move=True)),
    (b"a UID MOVE $ Trash", c.Copy("a", SequenceSet((), saved=True), "Trash", uid=True, move=True)),
    # STORE
    (
        b"a STORE 2:4 +FLAGS (\\Deleted)",
        c.StoreFlags("a", seq((2, 4)), "add", ("\\Deleted",)),
    ),
    (
        b"a UID STORE 1 -flags.silent \\seen $Junk",
        c.StoreFlags("a", seq(1), "remove", ("\\Seen", "$Junk"), silent=True, uid=True),
    ),
    (b"a STORE 1 FLAGS ()", c.StoreFlags("a", seq(1), "set", ())),
    (
        b"a STORE 1:3 (UNCHANGEDSINCE 0) FLAGS.SILENT (\\Draft)",
        c.StoreFlags("a", seq((1, 3)), "set", ("\\Draft",), silent=True, unchangedsince=0),
    ),
    # IDLE, NAMESPACE, ID, ENABLE, COMPRESS
    (b"a IDLE", c.Idle("a")),
    (b"a NAMESPACE", c.Namespace("a")),
    (b"a ID NIL", c.Id("a", None)),
    (b"a ID ()", c.Id("a", ())),
    (
        b'a ID ("name" "sodr" "version" "19.34" "vendor" NIL)',
        c.Id("a", (("name", "sodr"), ("version", "19.34"), ("vendor", None))),
    ),
    (b"a ENABLE condstore qresync", c.Enable("a", ("CONDSTORE", "QRESYNC"))),
    (b"a COMPRESS deflate", c.Compress("a", "DEFLATE")),
]


@pytest.mark.parametrize(
    ("data", "expected"), CASES, ids=[d[:40].decode("latin-1") for d, _ in CASES]
)
def test_parse(data: bytes, expected: c.Command) -> None:
    assert parse_command(data + b"\r\n") == expected


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        (b"a1 NOOP\r\n", "a1"),
        (b"a1\r\n", "a1"),
        (b"a1", "a1"),
        (b"x]y BAD", "x]y"),
        (b"+a NOOP", None),
        (b"* NOOP", None),
        (b"a(b NOOP", None),
        (b" a NOOP", None),
        (b"", None),
        (b"\xff NOOP", None),
    ],
)
def test_parse_tag(line: bytes, tag: str | None) -> None:
    assert parse_tag(line) == tag


def test_rfc3501_section8_sample_commands() -> None:
    """The client commands of the RFC 3501 §8 sample session, as the client sends them."""
    transcript = [
        b"a001 login mrc secret",
        b"a002 select inbox",
        b"a003 fetch 12 full",
        b"a004 fetch 12 body[header]",
        b"a005 store 12 +flags \\deleted",
        b"a006 logout",
    ]
    parsed = [parse_command(line + b"\r\n") for line in transcript]
    assert parsed == [
        c.Login("a001", "mrc", Secret("secret")),
        c.Select("a002", "INBOX"),
        c.Fetch("a003", seq(12), ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")),
        c.Fetch("a004", seq(12), (c.FetchBody(c.Section(text="HEADER")),)),
        c.StoreFlags("a005", seq(12), "add", ("\\Deleted",)),
        c.Logout("a006"),
    ]


def test_password_not_in_repr() -> None:
    cmd = parse_command(b"a LOGIN bob hunter2\r\n")
    assert "hunter2" not in repr(cmd)
