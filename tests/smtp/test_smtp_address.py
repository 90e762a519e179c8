"""The fast path reader agrees with aiosmtpd's full parser wherever it answers."""

from __future__ import annotations

from email._header_value_parser import get_angle_addr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.smtp.address import simple_path

# Pieces a path is made of, plain and awkward, so that random strings often look
# like addresses and often are almost addresses.
_PIECES = st.sampled_from(
    [
        "a",
        "Z",
        "0",
        "+",
        "-",
        "_",
        "=",
        "!",
        "~",
        ".",
        "..",
        "@",
        "<",
        ">",
        " ",
        "\t",
        "(",
        ")",
        '"',
        "\\",
        "[",
        "]",
        ":",
        ",",
        ";",
        "é",
        "x.y",
        "SIZE=10",
        "BODY=8BITMIME",
    ]
)


def _full(arg: str) -> tuple[str, str] | None:
    """aiosmtpd's reading of a path starting with '<' (``SMTP._getaddr``)."""
    try:
        address, rest = get_angle_addr(arg)
    except Exception:
        return None
    return address.addr_spec, rest


@settings(max_examples=3000)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_fast_path_agrees_with_the_full_parser(tail: str) -> None:
    arg = "<" + tail
    fast = simple_path(arg)
    if fast is not None:
        assert fast == _full(arg)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("<bob@example.org>", ("bob@example.org", "")),
        (
            "<bob.smith+tag@mail-1.example.org> SIZE=1024 BODY=8BITMIME",
            ("bob.smith+tag@mail-1.example.org", "SIZE=1024 BODY=8BITMIME"),
        ),
        ("<o'neil@example.org>\tSIZE=5", ("o'neil@example.org", "SIZE=5")),
    ],
)
def test_common_paths_take_the_fast_path(arg: str, expected: tuple[str, str]) -> None:
    assert simple_path(arg) == expected == _full(arg)


@pytest.mark.parametrize(
    "arg",
    [
        "<>",
        '<"a b"@example.org>',
        "<@relay:bob@example.org>",
        "<bob@[127.0.0.1]>",
        "<bob@example.org> (comment)",
        "<bob@example.org.>",
        "<.bob@example.org>",
        "<bob@example.org>  ",
        "< bob@example.org>",
        "<bøb@example.org>",
        "bob@example.org",
    ],
)
def test_other_paths_go_to_the_full_parser(arg: str) -> None:
    assert simple_path(arg) is None


_WORD = st.text(alphabet="aZ09+-_=!~'.é(\" ", min_size=0, max_size=6)


@settings(max_examples=3000)
@given(
    _WORD,
    _WORD,
    st.sampled_from(["", " ", "  ", "\t", " (", " SIZE=1", "X"]),
    st.sampled_from(["", "SIZE=1", "BODY=8BITMIME SMTPUTF8"]),
)
def test_address_shaped_paths_agree(local: str, domain: str, gap: str, params: str) -> None:
    arg = f"<{local}@{domain}>{gap}{params}"
    fast = simple_path(arg)
    if fast is not None:
        assert fast == _full(arg)
