"""ENVELOPE / BODYSTRUCTURE / BODY against the RFC 3501 examples and hand-derived values."""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from sexp import read

from pushmail.imap.structure import body_structure, build_cache, count_lines, envelope
from pushmail.mime.rawparts import parse_message

Eml = Callable[..., bytes]


def test_rfc3501_envelope_example(eml: Eml) -> None:
    # RFC 3501 §8, the FETCH example, byte for byte.
    expected = (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )
    assert build_cache(eml("rfc3501_envelope")).envelope == expected


def _rfc3501_body_message() -> bytes:
    """A message whose BODY is the one of RFC 3501 §7.4.2: a 23-line, 1152-octet text
    part and a 73-line, 4554-octet base64 part."""
    text = b"".join(b"x" * 50 + b"\r\n" for _ in range(22)) + b"last..\r\n"
    assert (len(text), text.count(b"\n")) == (1152, 23)
    b64 = b"".join(b"A" * 60 + b"\r\n" for _ in range(72)) + b"B" * 88 + b"\r\n"
    assert (len(b64), b64.count(b"\n")) == (4554, 73)
    return (
        b"From: a@b.c\r\nContent-Type: MULTIPART/MIXED; BOUNDARY=b\r\n\r\n"
        b"--b\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n" + text + b"\r\n"
        b"--b\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
        b"Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
        b"Content-Description: Compiler diff\r\nContent-Transfer-Encoding: BASE64\r\n\r\n"
        + b64
        + b"\r\n--b--\r\n"
    )


def test_rfc3501_body_example() -> None:
    expected = (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")'
    )
    # Type and parameter names are case-insensitive; we send them in lower case.
    assert build_cache(_rfc3501_body_message()).body.lower() == expected.lower()


# The embedded message of part 3 of nested.eml, line by line, as in the data file.
_PART3_LINES = [
    b"From: Carol <carol@example.com>",
    b"Subject: inner three",
    b"MIME-Version: 1.0",
    b"Content-Type: multipart/mixed; boundary=three",
    b"",
    b"--three",
    b"Content-Type: text/plain",
    b"",
    b"Part three dot one.",
    b"--three",
    b"Content-Type: application/octet-stream",
    b"Content-Transfer-Encoding: quoted-printable",
    b"",
    b"a=3Db",
    b"--three--",
]


def test_nested_bodystructure_by_hand(eml: Eml) -> None:
    part3 = b"\r\n".join(_PART3_LINES)  # the CRLF before "--outer" is the delimiter's
    tree = read(build_cache(eml("nested")).bodystructure)
    assert isinstance(tree, list)
    p1, p2, p3, p4, subtype, params, dsp, lang, loc = tree
    assert (
        p1 == [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 9, 0] + [None] * 4
    )
    assert p2[:7] == [b"application", b"octet-stream", None, None, None, b"base64", 8]
    assert len(p2) == 11  # basic: no lines; md5, dsp, lang, loc
    assert p3[:7] == [b"message", b"rfc822", None, None, None, b"7bit", len(part3)]
    env, inner, lines = p3[7:10]
    assert env[1] == b"inner three" and env[2] == [[b"Carol", None, b"carol", b"example.com"]]
    assert lines == len(_PART3_LINES) - 1  # line ends; the last is the delimiter's
    assert inner[0][6:8] == [19, 0]  # "Part three dot one." (no line end of its own)
    assert inner[1][5:7] == [b"quoted-printable", 5]
    assert inner[2:4] == [b"mixed", [b"boundary", b"three"]]
    assert p4[0][:7] == [b"image", b"gif", None, None, None, b"base64", 20]
    embedded = p4[1][8]
    alternative = embedded[1]
    assert [alternative[0][6], alternative[1][6], alternative[2]] == [13, 26, b"alternative"]
    assert alternative[1][:2] == [b"text", b"richtext"]
    assert [subtype, params, dsp, lang, loc] == [
        b"mixed",
        [b"boundary", b"outer"],
        None,
        None,
        None,
    ]


def test_body_is_bodystructure_without_extensions(eml: Eml) -> None:
    cache = build_cache(eml("nested"))
    body = read(cache.body)
    assert body[0] == [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 9, 0]
    assert body[1] == [b"application", b"octet-stream", None, None, None, b"base64", 8]
    assert body[4] == b"mixed" and len(body) == 5
    assert body[2][8][2] == b"mixed" and len(body[2][8]) == 3  # embedded BODY, not extended


def test_alternative_with_attachment(eml: Eml) -> None:
    cache = build_cache(eml("alternative"))
    qp_text = (
        b"Sch=C3=B6ne Gr=C3=BC=C3=9Fe, das Angebot gilt bis Freitag.\r\n"
        b"Zweite Zeile mit einem sehr langen Wort, das umgebrochen wer=\r\n"
        b"den muss."
    )
    expected = (
        b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d 2 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "iso-8859-1") NIL NIL "base64" 28 0 NIL NIL NIL NIL) '
        b'"alternative" ("boundary" "==alt==") NIL NIL NIL)'
        b'("application" "pdf" ("name" "report.pdf") "<pdf@shop.example>" "Monthly report" '
        b'"base64" 28 NIL ("attachment" ("filename*" "utf-8\'\'%%C3%%9Cbersicht.pdf")) '
        b'("de" "en") "http://shop.example/report.pdf") '
        b'"mixed" ("boundary" "==mixed==") NIL ("de") NIL)'
    ) % len(qp_text)
    assert cache.bodystructure == expected


def test_envelope_keeps_encoded_words_and_groups(eml: Eml) -> None:
    env = read(build_cache(eml("alternative")).envelope)
    assert env[0] == b"Tue, 04 Jun 2024 23:30:00 -0700"
    assert env[1] == b"=?utf-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= and more"  # unfolded, raw
    joerg = [[b"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=", None, b"joerg", b"shop.example"]]
    assert env[2] == env[3] == env[4] == joerg  # Sender, Reply-To default to From
    assert env[5] == [
        [None, None, b"Friends", None],
        [None, None, b"ann", b"example.org"],
        [b"Smith, Bob", None, b"bob", b"example.org"],
        [None, None, None, None],
        [None, None, b"carl", b"example.org"],
    ]
    assert env[6] == [[None, None, b"undisclosed-recipients", None], [None, None, None, None]]
    assert env[7:] == [None, b"<prev@example.org>", b"<alt-1@shop.example>"]


def test_missing_headers_and_default_type(eml: Eml) -> None:
    cache = build_cache(eml("simple"))
    someone = [[None, None, b"someone", b"example.com"]]
    assert read(cache.envelope) == [
        None,
        None,
        someone,
        someone,
        someone,
        [[b"Ann", None, b"ann", b"example.org"]],
        None,
        None,
        None,
        None,
    ]
    body = b"Just a line.\r\nAnd another\r\n"
    assert cache.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 2)' % len(body)


def test_empty_sender_and_reply_to_fall_back_to_from() -> None:
    raw = b"From: a@b.c\r\nSender:\r\nReply-To: \r\n\r\n"
    env = read(build_cache(raw).envelope)
    assert env[2] == env[3] == env[4] == [[None, None, b"a", b"b.c"]]


def test_broken_mime_gets_best_effort_structure(eml: Eml) -> None:
    tree = read(build_cache(eml("broken")).bodystructure)
    first, no_boundary, unknown, subtype = tree[:4]
    assert first[6:8] == [11, 0]  # "First part." (its CRLF is the delimiter's)
    # A multipart without a boundary cannot be split: one empty text/plain part, as
    # Dovecot shows it (tests/e2e/test_mime_dovecot_diff.py).
    empty = [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 0, 0]
    assert no_boundary[0][:8] == empty
    assert no_boundary[1] == b"alternative"
    # The last part runs to the end because the close delimiter never comes.
    assert unknown[2] == [b"charset", b"x-unknown-charset"]
    assert unknown[5:7] == [b"x-uuencode", len(b"begin 644 file\r\n")]
    assert subtype == b"mixed"


def test_multipart_without_any_part_still_has_one_body() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno delimiters at all\r\n"
    assert build_cache(raw).body == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'
    )


def test_digest_parts_default_to_message_rfc822() -> None:
    raw = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
        b"Subject: one\r\n\r\nhi\r\n--d--\r\n"
    )
    part = read(build_cache(raw).body)[0]
    assert part[:2] == [b"message", b"rfc822"] and part[7][1] == b"one"


def test_eight_bit_header_goes_as_literal() -> None:
    raw = "Subject: Grüße\r\nFrom: Jörg <j@x.de>\r\n\r\nx".encode()
    env = build_cache(raw).envelope
    assert b"{7}\r\n" + "Grüße".encode() in env
    assert read(env)[2] == [["Jörg".encode(), None, b"j", b"x.de"]]


def test_lf_only_message_counts_its_own_bytes(eml: Eml) -> None:
    raw = eml("simple", crlf=False)
    assert read(build_cache(raw).body)[6:8] == [len(b"Just a line.\nAnd another\n"), 2]


def test_count_lines() -> None:
    # Line ends only, as Dovecot counts (tests/e2e/test_mime_dovecot_diff.py).
    cases = {b"": 0, b"a": 0, b"a\n": 1, b"a\nb": 1, b"\r\n\r\n": 2}
    assert {data: count_lines(data) for data in cases} == cases


def test_deep_nesting_is_bounded() -> None:
    depth = 3000
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    cache = build_cache(head + b"\r\nleaf\r\n")
    assert read(cache.bodystructure) is not None


def test_many_parts_are_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20000
    assert len(read(build_cache(raw).body)) <= 5001


def test_large_message_is_fast() -> None:
    payload = (b"A" * 76 + b"\r\n") * (10_000_000 // 78)
    raw = (
        b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--zz\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + payload
        + b"--zz--\r\n"
    )
    started = time.perf_counter()
    cache = build_cache(raw)
    elapsed = time.perf_counter() - started
    assert read(cache.body)[1][6] == len(payload) - 2
    assert elapsed < 2.0  # generous: typically a few milliseconds


def _structure(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Without build_cache's last-resort fallback, so a bug would show here."""
    root = parse_message(raw)
    return envelope(root.header), body_structure(root, raw, True), body_structure(root, raw, False)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_well_formed_structure(raw: bytes) -> None:
    for encoded in _structure(raw):
        read(encoded)


_LINES = st.sampled_from(
    [
        b"Content-Type: multipart/mixed; boundary=a",
        b'Content-Type: multipart/alternative; boundary="b"',
        b"Content-Type: message/rfc822",
        b"Content-Type: text/plain; charset=utf-8; name*0*=x''%FF; name*1=y",
        b'Content-Disposition: inline; filename="a\\"b"',
        b"Content-Transfer-Encoding: base64",
        b"Content-Language: ,",
        b'To: g: a@b, (c:) <d@e>;, "x;" <y@z>',
        b"From: <>",
        b"Subject: =?utf-8?b?broken",
        b"--a",
        b"--a--",
        b"--b",
        b"--b--",
        b"",
        b" folded",
        b"text \xff\x00",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_LINES, max_size=40), st.sampled_from([b"\r\n", b"\n"]))
def test_mime_shaped_input_gives_well_formed_structure(lines: list[bytes], eol: bytes) -> None:
    raw = eol.join(lines)
    for encoded in _structure(raw):
        read(encoded)
