"""FETCH attributes and SEARCH keys, each as data."""

from __future__ import annotations

import pytest

from pushmail.imap import commands as c
from pushmail.imap.command_table import parse_command
from pushmail.imap.types import SeqRange, SequenceSet

ONE = SequenceSet((SeqRange(1, 1),))
B = c.FetchBody
S = c.Section

FETCH_ATTS: list[tuple[bytes, tuple[c.FetchAtt, ...]]] = [
    (b"ALL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
    (b"fast", ("FLAGS", "INTERNALDATE", "RFC822.SIZE")),
    (b"FULL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")),
    (b"flags", ("FLAGS",)),
    (
        b"(ENVELOPE INTERNALDATE RFC822.SIZE BODY BODYSTRUCTURE UID MODSEQ SAVEDATE)",
        (
            "ENVELOPE",
            "INTERNALDATE",
            "RFC822.SIZE",
            "BODY",
            "BODYSTRUCTURE",
            "UID",
            "MODSEQ",
            "SAVEDATE",
        ),
    ),
    (b"(RFC822 RFC822.HEADER rfc822.text)", ("RFC822", "RFC822.HEADER", "RFC822.TEXT")),
    (b"BODY[]", (B(),)),
    (b"body.peek[]<0.1024>", (B(partial=(0, 1024), peek=True),)),
    (b"BODY[HEADER]", (B(S(text="HEADER")),)),
    (b"BODY[TEXT]", (B(S(text="TEXT")),)),
    (b"BODY[1]", (B(S(part=(1,))),)),
    (b"BODY[1.2.3]", (B(S(part=(1, 2, 3))),)),
    (b"BODY[4.2.MIME]", (B(S(part=(4, 2), text="MIME")),)),
    (b"BODY[3.header]", (B(S(part=(3,), text="HEADER")),)),
    (b"BODY[2.TEXT]", (B(S(part=(2,), text="TEXT")),)),
    (
        b'BODY.PEEK[HEADER.FIELDS (From to "Message-ID")]',
        (B(S(text="HEADER.FIELDS", fields=("FROM", "TO", "MESSAGE-ID")), peek=True),),
    ),
    (
        b"BODY[1.HEADER.FIELDS.NOT (Subject)]<10.20>",
        (B(S((1,), "HEADER.FIELDS.NOT", ("SUBJECT",)), partial=(10, 20)),),
    ),
    (b"BINARY[]", (B(binary=True),)),
    (b"BINARY.PEEK[1.2]<0.5>", (B(S(part=(1, 2)), (0, 5), peek=True, binary=True),)),
    (b"BINARY.SIZE[3]", (B(S(part=(3,)), binary=True, size_only=True),)),
]


@pytest.mark.parametrize(("atts", "items"), FETCH_ATTS, ids=[a.decode() for a, _ in FETCH_ATTS])
def test_fetch_atts(atts: bytes, items: tuple[c.FetchAtt, ...]) -> None:
    assert parse_command(b"a FETCH 1 " + atts + b"\r\n") == c.Fetch("a", ONE, items)


def test_fetch_modifiers() -> None:
    cmd = parse_command(b"a UID FETCH 1 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n")
    assert cmd == c.Fetch("a", ONE, ("FLAGS",), uid=True, changedsince=12345, vanished=True)
    cmd = parse_command(b"a FETCH 1 FLAGS (changedsince 7)\r\n")
    assert cmd == c.Fetch("a", ONE, ("FLAGS",), changedsince=7)


SEARCH_KEYS: list[tuple[bytes, c.SearchKey]] = [
    (b"ALL", c.SearchAll()),
    (b"answered", c.SearchFlag("\\Answered")),
    (b"DELETED", c.SearchFlag("\\Deleted")),
    (b"DRAFT", c.SearchFlag("\\Draft")),
    (b"FLAGGED", c.SearchFlag("\\Flagged")),
    (b"SEEN", c.SearchFlag("\\Seen")),
    (b"RECENT", c.SearchFlag("\\Recent")),
    (b"UNANSWERED", c.SearchFlag("\\Answered", False)),
    (b"UNDELETED", c.SearchFlag("\\Deleted", False)),
    (b"UNDRAFT", c.SearchFlag("\\Draft", False)),
    (b"UNFLAGGED", c.SearchFlag("\\Flagged", False)),
    (b"UNSEEN", c.SearchFlag("\\Seen", False)),
    (b"KEYWORD $Junk", c.SearchFlag("$Junk")),
    (b"UNKEYWORD foo", c.SearchFlag("foo", False)),
    (b"NEW", c.SearchNew()),
    (b"OLD", c.SearchOld()),
    (b'FROM "Smith"', c.SearchHeader("FROM", "Smith")),
    (b"TO bob", c.SearchHeader("TO", "bob")),
    (b"CC bob", c.SearchHeader("CC", "bob")),
    (b"BCC bob", c.SearchHeader("BCC", "bob")),
    (b"SUBJECT {5}\r\nhello", c.SearchHeader("SUBJECT", "hello")),
    (b"HEADER x-list-id foo", c.SearchHeader("X-LIST-ID", "foo")),
    (b'HEADER Message-ID ""', c.SearchHeader("MESSAGE-ID", "")),
    (b"BODY gizmo", c.SearchText("BODY", "gizmo")),
    (b"TEXT gizmo", c.SearchText("TEXT", "gizmo")),
    (b"BEFORE 1-Feb-1994", c.SearchDate("BEFORE", "1994-02-01")),
    (b'ON "29-feb-2000"', c.SearchDate("ON", "2000-02-29")),
    (b"SINCE 01-Jan-2024", c.SearchDate("SINCE", "2024-01-01")),
    (b"SENTBEFORE 1-Feb-1994", c.SearchDate("BEFORE", "1994-02-01", sent=True)),
    (b"SENTON 1-Feb-1994", c.SearchDate("ON", "1994-02-01", sent=True)),
    (b"SENTSINCE 1-Feb-1994", c.SearchDate("SINCE", "1994-02-01", sent=True)),
    (b"LARGER 1000", c.SearchSize(True, 1000)),
    (b"SMALLER 0", c.SearchSize(False, 0)),
    (b"1:3,5", c.SearchSet(SequenceSet((SeqRange(1, 3), SeqRange(5, 5))))),
    (b"*", c.SearchSet(SequenceSet((SeqRange(None, None),)))),
    (b"$", c.SearchSet(SequenceSet((), saved=True))),
    (b"UID 4:*", c.SearchSet(SequenceSet((SeqRange(4, None),)), uid=True)),
    (b"MODSEQ 620162338", c.SearchModseq(620162338)),
    (b'MODSEQ "/flags/\\\\draft" all 620162338', c.SearchModseq(620162338)),
    (b"NOT SEEN", c.SearchNot(c.SearchFlag("\\Seen"))),
    (b"OR SEEN NEW", c.SearchOr(c.SearchFlag("\\Seen"), c.SearchNew())),
    (b"(SEEN)", c.SearchAnd((c.SearchFlag("\\Seen"),))),
    (
        b"OR (FROM a TO b) NOT (OLD 2)",
        c.SearchOr(
            c.SearchAnd((c.SearchHeader("FROM", "a"), c.SearchHeader("TO", "b"))),
            c.SearchNot(c.SearchAnd((c.SearchOld(), c.SearchSet(SequenceSet((SeqRange(2, 2),)))))),
        ),
    ),
    (b"SEEN NEW", c.SearchAnd((c.SearchFlag("\\Seen"), c.SearchNew()))),
]


@pytest.mark.parametrize(("keys", "key"), SEARCH_KEYS, ids=[k.decode() for k, _ in SEARCH_KEYS])
def test_search_keys(keys: bytes, key: c.SearchKey) -> None:
    assert parse_command(b"a SEARCH " + keys + b"\r\n") == c.Search("a", key)


def test_search_charset_and_return() -> None:
    cmd = parse_command(b"a UID SEARCH RETURN (min COUNT) CHARSET utf-8 TEXT {4}\r\n\xc3\xa4bc\r\n")
    assert cmd == c.Search(
        "a", c.SearchText("TEXT", "äbc"), uid=True, charset="UTF-8", returns=("MIN", "COUNT")
    )
    cmd = parse_command(b'a SEARCH CHARSET "ISO-8859-1" SUBJECT {1}\r\n\xe4\r\n')
    assert cmd == c.Search("a", c.SearchHeader("SUBJECT", "ä"), charset="ISO-8859-1")
    cmd = parse_command(b"a SEARCH RETURN () ALL\r\n")
    assert cmd == c.Search("a", c.SearchAll(), returns=())


def test_unknown_charset_says_badcharset() -> None:
    from pushmail.imap.errors import ProtocolError

    with pytest.raises(ProtocolError) as info:
        parse_command(b"a SEARCH CHARSET X-UNKNOWN ALL\r\n")
    assert info.value.code == "BADCHARSET"
    with pytest.raises(ProtocolError) as info:
        parse_command(b"a SEARCH CHARSET UTF-8 TEXT {1}\r\n\xff\r\n")
    assert info.value.code == "BADCHARSET"


def test_preview_and_its_modifiers() -> None:
    """RFC 8970: ``PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]``, LAZY only;
    after a lone PREVIEW a parenthesis may open the fetch modifiers instead."""
    from pushmail.imap.errors import ProtocolError

    def items(line: bytes) -> tuple[object, ...]:
        cmd = parse_command(line)
        assert isinstance(cmd, c.Fetch)
        return cmd.items

    assert items(b"a FETCH 1 (PREVIEW)\r\n") == ("PREVIEW",)
    assert items(b"a FETCH 1 (UID PREVIEW (lazy) FLAGS)\r\n") == ("UID", "PREVIEW (LAZY)", "FLAGS")
    assert items(b"a FETCH 1 PREVIEW (LAZY)\r\n") == ("PREVIEW (LAZY)",)
    cmd = parse_command(b"a FETCH 1 PREVIEW (CHANGEDSINCE 5)\r\n")
    assert isinstance(cmd, c.Fetch) and cmd.items == ("PREVIEW",) and cmd.changedsince == 5
    for bad in (b"a FETCH 1 (PREVIEW (FOO))\r\n", b"a FETCH 1 (PREVIEW ())\r\n"):
        with pytest.raises(ProtocolError):
            parse_command(bad)
