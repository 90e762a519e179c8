"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.imap.errors import ProtocolError
from pushmail.imap.mutf7 import decode_mutf7, encode_mutf7

EXAMPLES = [
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("Entwürfe", "Entw&APw-rfe"),
    ("A&B", "A&-B"),
    ("&", "&-"),
    ("", ""),
    ("plain ascii", "plain ascii"),
    ("😀", "&2D3eAA-"),  # outside the BMP: a surrogate pair
]


@pytest.mark.parametrize(("name", "wire"), EXAMPLES)
def test_examples(name: str, wire: str) -> None:
    assert encode_mutf7(name) == wire
    assert decode_mutf7(wire) == name


@pytest.mark.parametrize(
    "wire",
    [
        "&U,BTFw",  # unterminated
        "&Jjo!-",  # not BASE64
        "&AA-",  # odd number of UTF-16 bytes
        "&AOQ=-",  # "=" padding is not part of modified BASE64
        "&AOQ/-",  # "/" is written ","
        "&AGE-",  # printable ASCII ("a") must represent itself
        "&2D0-",  # a lone surrogate
        "tab\there",  # not printable ASCII
        "ä",
    ],
)
def test_invalid(wire: str) -> None:
    with pytest.raises(ProtocolError):
        decode_mutf7(wire)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8")))
def test_round_trip(name: str) -> None:
    wire = encode_mutf7(name)
    assert all(0x20 <= ord(ch) <= 0x7E for ch in wire)
    assert decode_mutf7(wire) == name


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_decoding_any_ascii_raises_only_protocol_error(wire: str) -> None:
    with contextlib.suppress(ProtocolError):
        decode_mutf7(wire)
