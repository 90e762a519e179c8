"""PREVIEW text (RFC 8970) as computed at delivery (``mime/preview.py``)."""

from __future__ import annotations

import base64

from pushmail.imap.structure import build_cache
from pushmail.mime.preview import PREVIEW_CHARS


def preview(raw: bytes) -> str | None:
    return build_cache(raw).preview


def test_plain_text_is_squeezed_and_quotes_left_out() -> None:
    raw = b"Subject: x\r\n\r\nHello   Joe,\r\n\r\n> quoted\r\n  >> more\r\n\tsee you\r\n"
    assert preview(raw) == "Hello Joe, see you"


def test_cut_to_200_characters_counted_as_characters() -> None:
    body = ("é" * 150 + " " + "x" * 300).encode()
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    got = preview(raw)
    assert got is not None and len(got) == PREVIEW_CHARS == 200
    assert got.startswith("é" * 150 + " x")


def test_transfer_encoding_and_charset_are_undone() -> None:
    text = "Grüße aus Köln".encode("iso-8859-1")
    raw = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(text)
    )
    assert preview(raw) == "Grüße aus Köln"


def test_html_is_reduced_to_its_text() -> None:
    raw = (
        b"Content-Type: text/html\r\n\r\n<html><head><title>T</title><style>p{}</style>"
        b"</head><body><p>Hi&nbsp;<b>there</b></p><script>x()</script><p>bye &amp; "
        b"thanks</p></body></html>\r\n"
    )
    assert preview(raw) == "Hi there bye & thanks"  # &nbsp; is white space too


def test_first_text_part_that_is_not_an_attachment() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n"
        b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nfile\r\n"
        b'--b\r\nContent-Type: multipart/alternative; boundary="c"\r\n\r\n'
        b"--c\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
        b"--c\r\nContent-Type: text/html\r\n\r\n<p>the html</p>\r\n--c--\r\n--b--\r\n"
    )
    assert preview(raw) == "the text"


def test_no_text_is_the_empty_string() -> None:
    raw = b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n"
    assert preview(raw) == ""
    assert preview(b"Subject: empty\r\n\r\n") == ""


def test_a_huge_text_part_costs_no_more_than_a_small_one() -> None:
    raw = b"Subject: big\r\n\r\n" + b"\r\n" * 5_000_000 + b"late words\r\n"
    assert preview(raw) == ""  # only the first 32 KiB are read


def test_an_unknown_transfer_encoding_gives_no_preview() -> None:
    raw = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f.txt\r\n#:&D*\r\nend\r\n"
    assert preview(raw) == ""
