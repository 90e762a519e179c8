"""BODY[section] byte-exact slices (RFC 3501 §6.4.5) and BINARY decoding (RFC 3516)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.imap.commands import Section
from pushmail.mime.sections import (
    UnknownCteError,
    apply_partial,
    decode_binary,
    extract_section,
    header_fields,
)

Eml = Callable[..., bytes]


def _lines(*lines: bytes) -> bytes:
    return b"\r\n".join(lines)


# The RFC 3501 §6.4.5 table, on a message built to the same shape (nested.eml).
NESTED = {
    (): None,  # whole message, checked separately
    (1,): b"Part one.",
    (2,): b"AAECAwQF",
    (3, 1): b"Part three dot one.",
    (3, 2): b"a=3Db",
    (4, 1): b"R0lGODlhAQABAAAAACw=",
    (4, 2, 1): b"Part 4.2.1.",
    (4, 2, 2, 1): b"Part 4.2.2.1.",
    (4, 2, 2, 2): b"Part <bold>4.2.2.2</bold>.",
}


@pytest.mark.parametrize("part", [p for p in NESTED if p])
def test_leaf_parts(eml: Eml, part: tuple[int, ...]) -> None:
    assert extract_section(eml("nested"), Section(part=part)) == NESTED[part]


def test_whole_message_and_top_level_header_text(eml: Eml) -> None:
    raw = eml("nested")
    assert extract_section(raw, Section()) == raw
    header = extract_section(raw, Section(text="HEADER"))
    text = extract_section(raw, Section(text="TEXT"))
    assert header is not None and text is not None
    assert header.endswith(b'boundary="outer"\r\n\r\n') and header.startswith(b"From: Alice")
    assert header + text == raw
    assert text.startswith(b"This is the preamble.") and text.endswith(b"epilogue.\r\n")


def test_message_rfc822_part(eml: Eml) -> None:
    raw = eml("nested")
    inner = extract_section(raw, Section(part=(3,)))
    assert inner is not None
    assert inner.startswith(b"From: Carol") and inner.endswith(b"--three--")
    assert extract_section(raw, Section(part=(3,), text="HEADER")) == _lines(
        b"From: Carol <carol@example.com>",
        b"Subject: inner three",
        b"MIME-Version: 1.0",
        b"Content-Type: multipart/mixed; boundary=three",
        b"",
        b"",
    )
    text = extract_section(raw, Section(part=(3,), text="TEXT"))
    assert text is not None and text.startswith(b"--three\r\n") and text.endswith(b"--three--")
    assert extract_section(raw, Section(part=(3,), text="MIME")) == (
        b"Content-Type: MESSAGE/RFC822\r\n\r\n"
    )
    got = extract_section(raw, Section(part=(4, 2), text="HEADER.FIELDS", fields=("SUBJECT",)))
    assert got == b"Subject: inner four two\r\n\r\n"


def test_mime_headers_of_parts(eml: Eml) -> None:
    raw = eml("nested")
    assert extract_section(raw, Section(part=(4, 1), text="MIME")) == _lines(
        b"Content-Type: IMAGE/GIF", b"Content-Transfer-Encoding: base64", b"", b""
    )
    assert extract_section(raw, Section(part=(3, 2), text="MIME")) == _lines(
        b"Content-Type: application/octet-stream",
        b"Content-Transfer-Encoding: quoted-printable",
        b"",
        b"",
    )


def test_multipart_part_is_its_body(eml: Eml) -> None:
    got = extract_section(eml("nested"), Section(part=(4, 2, 2)))
    assert got == _lines(
        b"--alt",
        b"Content-Type: text/plain",
        b"",
        b"Part 4.2.2.1.",
        b"--alt",
        b"Content-Type: text/richtext",
        b"",
        b"Part <bold>4.2.2.2</bold>.",
        b"--alt--",
    )


@pytest.mark.parametrize(
    "section",
    [
        Section(part=(5,)),
        Section(part=(0,)),
        Section(part=(1, 1)),  # text/plain has no sub-parts
        Section(part=(1,), text="HEADER"),  # not a message/rfc822 part
        Section(part=(4,), text="TEXT"),
        Section(part=(3, 3)),
        Section(part=(4, 2, 2, 3)),
        Section(text="MIME"),
    ],
)
def test_missing_sections_are_none(eml: Eml, section: Section) -> None:
    assert extract_section(eml("nested"), section) is None


def test_non_multipart_message_has_part_one(eml: Eml) -> None:
    raw = eml("simple")
    body = b"Just a line.\r\nAnd another\r\n"
    assert extract_section(raw, Section(part=(1,))) == body
    assert extract_section(raw, Section(text="TEXT")) == body
    assert extract_section(raw, Section(part=(2,))) is None
    assert extract_section(raw, Section(part=(1,), text="MIME")) == raw[: -len(body)]


def test_message_rfc822_at_top_level() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody"
    assert extract_section(raw, Section(part=(1,))) == b"Subject: in\r\n\r\nbody"
    assert extract_section(raw, Section(part=(1, 1))) == b"body"
    assert extract_section(raw, Section(part=(1,), text="HEADER")) == b"Subject: in\r\n\r\n"


def test_header_fields_keep_folding_and_order(eml: Eml) -> None:
    raw = eml("alternative")
    got = extract_section(raw, Section(text="HEADER.FIELDS", fields=("SUBJECT", "TO", "X-ABSENT")))
    assert got == _lines(
        b'To: Friends: ann@example.org, "Smith, Bob" <bob@example.org>;,',
        b" carl@example.org",
        b"Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= and",
        b" more",
        b"",
        b"",
    )


def test_header_fields_not(eml: Eml) -> None:
    raw = eml("rfc3501_envelope")
    names = ("DATE", "FROM", "SUBJECT", "TO", "CC", "MESSAGE-ID")
    got = extract_section(raw, Section(text="HEADER.FIELDS.NOT", fields=names))
    assert got == b"MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"


def test_header_fields_nothing_matches_is_blank_line() -> None:
    assert header_fields(b"A: 1\r\n\r\n", ("B",), exclude=False) == b"\r\n"
    assert header_fields(b"A: 1\r\nb : 2\r\n\r\n", ("B",), exclude=False) == b"b : 2\r\n\r\n"


def test_delimiter_needs_line_start_and_blank_rest() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b  \r\n\r\nx --b\r\n--bb\r\n--b-- trailing\r\n--b\r\n\r\ntwo\r\n--b--"
    )
    assert extract_section(raw, Section(part=(1,))) == b"x --b\r\n--bb\r\n--b-- trailing"
    assert extract_section(raw, Section(part=(2,))) == b"two"


def test_part_without_headers_and_empty_part() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b\r\n\r\nz\r\n--b--\r\n"
    # Part 1 is empty: the CRLF before the next delimiter belongs to the delimiter.
    assert extract_section(raw, Section(part=(1,))) == b""
    assert extract_section(raw, Section(part=(1,), text="MIME")) == b""
    # Part 2 has no header fields: its MIME header is just the blank line.
    assert extract_section(raw, Section(part=(2,), text="MIME")) == b"\r\n"
    assert extract_section(raw, Section(part=(2,))) == b"z"


def test_apply_partial() -> None:
    assert apply_partial(b"0123456789", None) == b"0123456789"
    assert apply_partial(b"0123456789", (2, 3)) == b"234"
    assert apply_partial(b"0123456789", (8, 100)) == b"89"
    assert apply_partial(b"0123456789", (20, 5)) == b""


def test_binary_decodes_transfer_encodings(eml: Eml) -> None:
    raw = eml("nested")
    assert decode_binary(raw, Section(part=(2,))) == bytes(range(6))
    assert decode_binary(raw, Section(part=(3, 2))) == b"a=b"
    assert decode_binary(raw, Section(part=(1,))) == b"Part one."
    assert decode_binary(raw, Section(part=(9,))) is None
    assert decode_binary(raw, Section()) == raw
    alt = eml("alternative")
    assert (
        decode_binary(alt, Section(part=(1, 1)))
        == (
            "Schöne Grüße, das Angebot gilt bis Freitag.\r\n"
            "Zweite Zeile mit einem sehr langen Wort, das umgebrochen werden muss."
        ).encode()
    )
    assert decode_binary(alt, Section(part=(1, 2))) == "<p>Schöne Grüße</p>".encode("latin-1")


def test_binary_unknown_encoding(eml: Eml) -> None:
    with pytest.raises(UnknownCteError):
        decode_binary(eml("broken"), Section(part=(3,)))


def test_binary_tolerates_bad_base64() -> None:
    raw = (
        b"Content-Type: application/x\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAEC*Aw\r\nQ=\r\nF"
    )
    assert decode_binary(raw, Section(part=(1,))) == bytes(range(6))


_SECTIONS = st.builds(
    Section,
    part=st.lists(st.integers(1, 4), max_size=4).map(tuple),
    text=st.sampled_from([None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]),
    fields=st.lists(st.sampled_from(["SUBJECT", "FROM", "X"]), max_size=2).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500), _SECTIONS)
def test_never_raises_on_arbitrary_bytes(raw: bytes, section: Section) -> None:
    got = extract_section(raw, section)
    assert got is None or isinstance(got, bytes)
    if not section.text:
        with contextlib.suppress(UnknownCteError):
            decode_binary(raw, section)


@settings(max_examples=200, deadline=None)
@given(_SECTIONS)
def test_never_raises_on_sample_messages(eml: Eml, section: Section) -> None:
    for name in ("nested", "alternative", "simple", "broken"):
        got = extract_section(eml(name), section)
        if got is not None:
            assert got in eml(name) or section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")
