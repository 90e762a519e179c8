"""SEARCH keys against messages (RFC 3501 §6.4.4, RFC 7162 MODSEQ, RFC 5182 ``$``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.imap.commands import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNew,
    SearchNot,
    SearchOld,
    SearchOr,
    SearchSet,
    SearchSize,
    SearchText,
)
from pushmail.imap.search_eval import SearchContext, matches, needs_body
from pushmail.imap.types import SeqRange, SequenceSet

DATA = Path(__file__).parents[1] / "mime" / "data"
PDT = timezone(timedelta(hours=-7))


def _eml(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes().replace(b"\n", b"\r\n")


def _ctx(raw: bytes = b"", **kw: object) -> SearchContext:
    calls: list[int] = []

    def get_raw() -> bytes:
        calls.append(1)
        assert len(calls) == 1, "the body is read at most once"
        return raw

    base: dict[str, object] = dict(
        seq=3,
        uid=30,
        flags=frozenset({"\\Seen"}),
        internaldate=datetime(2024, 6, 4, 23, 30, tzinfo=PDT),
        size=1000,
        modseq=50,
        max_seq=5,
        max_uid=77,
        get_raw=get_raw,
    )
    base.update(kw)
    return SearchContext(**base)  # type: ignore[arg-type]


def _set(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (SearchAll(), True),
        (SearchFlag("\\Seen"), True),
        (SearchFlag("\\SEEN"), True),
        (SearchFlag("\\Seen", present=False), False),
        (SearchFlag("\\Flagged"), False),
        (SearchFlag("\\Flagged", present=False), True),
        (SearchFlag("$Label1"), True),
        (SearchFlag("$label1"), True),
        (SearchFlag("$Other"), False),
        (SearchNew(), False),
        (SearchOld(), False),
        (SearchSize(larger=True, n=999), True),
        (SearchSize(larger=True, n=1000), False),
        (SearchSize(larger=False, n=1000), False),
        (SearchSize(larger=False, n=1001), True),
        (SearchModseq(50), True),
        (SearchModseq(51), False),
        (SearchSet(_set((1, 2), (3, 3))), True),
        (SearchSet(_set((4, None))), False),
        (SearchSet(_set((None, None))), False),  # * is seq 5
        (SearchSet(_set((30, 30)), uid=True), True),
        (SearchSet(_set((31, None)), uid=True), False),
        (SearchSet(_set((100, None)), uid=True), False),  # 77:100 holds no 30
        (SearchNot(SearchFlag("\\Seen")), False),
        (SearchOr(SearchFlag("\\Deleted"), SearchSize(True, 10)), True),
        (SearchOr(SearchFlag("\\Deleted"), SearchSize(True, 10_000)), False),
        (SearchAnd((SearchFlag("\\Seen"), SearchModseq(10))), True),
        (SearchAnd((SearchFlag("\\Seen"), SearchModseq(100))), False),
    ],
)
def test_metadata_keys(key: SearchKey, expected: bool) -> None:
    ctx = _ctx(flags=frozenset({"\\Seen", "\\Recent", "$Label1"}))
    assert not needs_body(key)
    assert matches(key, ctx) is expected


def test_star_is_the_largest_uid() -> None:
    ctx = _ctx(uid=77)
    assert matches(SearchSet(_set((100, None)), uid=True), ctx)
    assert matches(SearchSet(_set((None, None)), uid=True), ctx)


def test_new_old_recent() -> None:
    recent = frozenset({"\\Recent"})
    assert matches(SearchNew(), _ctx(flags=recent))
    assert not matches(SearchOld(), _ctx(flags=recent))
    assert matches(SearchOld(), _ctx(flags=frozenset()))
    assert not matches(SearchNew(), _ctx(flags=recent | {"\\Seen"}))


def test_saved_result() -> None:
    saved = SequenceSet((), saved=True)
    assert matches(SearchSet(saved), _ctx(saved=frozenset({30})))
    assert not matches(SearchSet(saved, uid=True), _ctx(saved=frozenset({31})))


@pytest.mark.parametrize(
    ("op", "day", "expected"),
    [
        ("ON", "2024-06-04", True),  # 23:30 -0700 is still the 4th in its own zone
        ("ON", "2024-06-05", False),
        ("BEFORE", "2024-06-04", False),
        ("BEFORE", "2024-06-05", True),
        ("SINCE", "2024-06-04", True),
        ("SINCE", "2024-06-05", False),
    ],
)
def test_internal_date_by_calendar_day_in_its_own_zone(op: str, day: str, expected: bool) -> None:
    key = SearchDate(op, day)  # type: ignore[arg-type]
    assert not needs_body(key)
    assert matches(key, _ctx()) is expected


@pytest.mark.parametrize(
    ("op", "day", "expected"),
    [
        ("ON", "2024-06-04", True),  # Date: Tue, 04 Jun 2024 23:30:00 -0700
        ("ON", "2024-06-05", False),
        ("BEFORE", "2024-06-05", True),
        ("BEFORE", "2024-06-04", False),
        ("SINCE", "2024-06-04", True),
        ("SINCE", "2024-06-05", False),
    ],
)
def test_sent_date(op: str, day: str, expected: bool) -> None:
    key = SearchDate(op, day, sent=True)  # type: ignore[arg-type]
    assert needs_body(key)
    assert matches(key, _ctx(_eml("alternative"))) is expected


def test_no_date_header_matches_no_sent_key() -> None:
    for op in ("BEFORE", "ON", "SINCE"):
        key = SearchDate(op, "2000-01-01", sent=True)  # type: ignore[arg-type]
        assert not matches(key, _ctx(_eml("simple")))
        assert not matches(key, _ctx(b"Date: not a date\r\n\r\n"))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("SUBJECT", "grüße aus köln", True),  # RFC 2047, case-insensitive
        ("SUBJECT", "KÖLN AND MORE", True),  # across the fold
        ("SUBJECT", "=?utf-8?", False),  # the decoded text is searched
        ("FROM", "jörg müller", True),
        ("FROM", "joerg@shop", True),
        ("TO", "smith, bob", True),
        ("TO", "carl@", True),
        ("CC", "undisclosed", True),
        ("BCC", "", False),  # no Bcc field at all
        ("CC", "", True),  # empty string: any message that has the field
        ("X-Absent", "", False),
        ("Message-ID", "alt-1@", True),
        ("content-language", "DE", True),
        ("Received", "mx.shop.example", True),
        ("Subject", "Berlin", False),
    ],
)
def test_header_keys(field: str, value: str, expected: bool) -> None:
    key = SearchHeader(field, value)
    assert needs_body(key)
    assert matches(key, _ctx(_eml("alternative"))) is expected


def test_eight_bit_header_is_read_as_utf8() -> None:
    raw = "Subject: Grüße\r\n\r\n".encode()
    assert matches(SearchHeader("SUBJECT", "GRÜSSE"), _ctx(raw))  # case folding: ß = ss


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("BODY", "schöne grüße", True),  # quoted-printable UTF-8
        ("BODY", "umgebrochen werden", True),  # QP soft line break undone
        ("BODY", "<P>SCHÖNE", True),  # base64 ISO-8859-1 HTML
        ("BODY", "JVBERi0", False),  # attachments are not text
        ("BODY", "Friends", False),  # the header is not the body
        ("TEXT", "friends", True),
        ("TEXT", "jörg", True),
        ("TEXT", "freitag", True),
        ("TEXT", "nowhere to be found", False),
    ],
)
def test_body_and_text(where: str, value: str, expected: bool) -> None:
    key = SearchText(where, value)  # type: ignore[arg-type]
    assert needs_body(key)
    assert matches(key, _ctx(_eml("alternative"))) is expected


def test_body_looks_into_embedded_messages() -> None:
    ctx = _ctx(_eml("nested"))
    assert matches(SearchText("BODY", "part 4.2.2.1"), ctx)
    assert matches(SearchText("BODY", "inner four two"), ctx)  # embedded header
    assert not matches(SearchText("BODY", "R0lGOD"), ctx)  # image/gif


def test_broken_message_is_searchable() -> None:
    ctx = _ctx(_eml("broken"))
    assert matches(SearchText("BODY", "first part"), ctx)
    assert matches(SearchText("BODY", "begin 644"), ctx)  # unknown CTE and charset
    assert matches(SearchHeader("FROM", "broken sender"), ctx)


def test_compound_keys_parse_once() -> None:
    ctx = _ctx(_eml("alternative"))  # get_raw asserts it is called once
    key = SearchAnd(
        (
            SearchHeader("SUBJECT", "köln"),
            SearchOr(SearchText("BODY", "nothing"), SearchNot(SearchText("TEXT", "zzz"))),
            SearchDate("SINCE", "2024-01-01", sent=True),
        )
    )
    assert needs_body(key)
    assert matches(key, ctx)


def test_needs_body_looks_inside() -> None:
    assert needs_body(SearchNot(SearchOr(SearchAll(), SearchAnd((SearchText("TEXT", "x"),)))))
    assert not needs_body(SearchNot(SearchOr(SearchAll(), SearchAnd((SearchNew(),)))))


_KEYS = st.sampled_from(
    [
        SearchHeader("SUBJECT", "a"),
        SearchHeader("FROM", ""),
        SearchText("BODY", "x"),
        SearchText("TEXT", "é"),
        SearchDate("ON", "2020-02-02", sent=True),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500), _KEYS)
def test_never_raises_on_arbitrary_bytes(raw: bytes, key: SearchKey) -> None:
    assert matches(key, _ctx(raw)) in (True, False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Subject: =?x-bad?q?abc?=",
                b"Subject: =?utf-8?b?#####?=",
                b"From: =?utf-8?q?\xff?= <a@b>",
                b"Date: Mon, 99 Foo 2024 99:99:99 +9999",
                b'Content-Type: text/plain; charset="base64_codec"',
                b"Content-Type: multipart/mixed; boundary=a",
                b"Content-Transfer-Encoding: quoted-printable",
                b"Content-Transfer-Encoding: base64",
                b"--a",
                b"",
                b"=F",
                b"\xff\xfe",
            ]
        ),
        max_size=30,
    ),
    _KEYS,
)
def test_never_raises_on_mime_shaped_input(lines: list[bytes], key: SearchKey) -> None:
    assert matches(key, _ctx(b"\r\n".join(lines))) in (True, False)


def test_delivery_report_is_searched_as_text() -> None:
    raw = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
        b"--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; x@y.z\r\n"
        b"--r\r\nContent-Type: application/octet-stream\r\n\r\nopaque words\r\n--r--\r\n"
    )
    assert matches(SearchText("BODY", "final-recipient: rfc822"), _ctx(raw))
    assert not matches(SearchText("BODY", "opaque"), _ctx(raw))


def test_address_fields_match_without_comments() -> None:
    raw = b"From: <user-from (comment)@ (comment) domain.org>\r\nCc: a@b.c; d@e.f\r\n\r\nx\r\n"
    assert matches(SearchHeader("FROM", "user-from@domain.org"), _ctx(raw))
    assert not matches(SearchHeader("FROM", "comment"), _ctx(raw))
    assert not matches(SearchHeader("CC", "d@e.f"), _ctx(raw))  # the list stops at ";"
