"""The push client's response reader: framing with literals, whole / byte by byte,
and the parsed shapes the watcher relies on; garbage raises ResponseError only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushmail.client.response import (
    Continuation,
    ResponseError,
    ResponseReader,
    Tagged,
    Untagged,
    fetch_items,
    parse_response,
)

STREAM = (
    b"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] ready\r\n"
    b"* 3 EXISTS\r\n"
    b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
    b"* 2 FETCH (UID 7 RFC822.SIZE 42 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM SUBJECT)] {22}\r\n"
    b"Subject: hi\r\nFrom: a\r\n)\r\n"
    b'* STATUS "My Box" (UIDNEXT 9 UIDVALIDITY 5)\r\n'
    b"+ idling\r\n"
    b"W1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
)


def _all(chunks: list[bytes]) -> list[object]:
    reader = ResponseReader()
    out: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)
        out.extend(reader)
    return out


def test_stream_whole_and_byte_by_byte() -> None:
    whole = _all([STREAM])
    assert whole == _all([STREAM[i : i + 1] for i in range(len(STREAM))])
    greeting, exists, uidv, fetch, status, cont, tagged = whole
    assert isinstance(greeting, Untagged) and greeting.code == "CAPABILITY"
    assert greeting.code_args == ("IMAP4rev1", "IDLE", "LITERAL+")
    assert exists == Untagged("EXISTS", 3)
    assert isinstance(uidv, Untagged) and uidv.code_args == (1700000000,)
    assert isinstance(fetch, Untagged) and fetch.number == 2
    items = fetch_items(fetch.values)
    assert items["UID"] == 7 and items["RFC822.SIZE"] == 42 and items["FLAGS"] == ("\\Seen",)
    assert items["BODY[HEADER.FIELDS (FROM SUBJECT)]"] == b"Subject: hi\r\nFrom: a\r\n"
    assert isinstance(status, Untagged) and status.values == (
        b"My Box",
        ("UIDNEXT", 9, "UIDVALIDITY", 5),
    )
    assert cont == Continuation("idling")
    assert tagged == Tagged("W1", "NO", "AUTHENTICATIONFAILED", (), "Authentication failed.")


def test_nil_and_quoted_escapes() -> None:
    r = parse_response(b'* 1 FETCH (ENVELOPE (NIL "a \\"b\\" c"))\r\n')
    assert isinstance(r, Untagged)
    assert fetch_items(r.values)["ENVELOPE"] == (None, b'a "b" c')


@pytest.mark.parametrize(
    "frame",
    [b"garbage\r\n", b"* 1 FETCH (UID 1\r\n", b'* X "open\r\n', b"W1 MAYBE x\r\n", b"* \r\n",
     b"* OK [UIDNEXT 4\r\n", b"* 1 FETCH (UID {5}\r\nab)\r\n", b")\r\n"],
)  # fmt: skip
def test_malformed_raises_response_error(frame: bytes) -> None:
    with pytest.raises(ResponseError):
        r = parse_response(frame)
        if isinstance(r, Untagged) and r.keyword == "FETCH":
            fetch_items(r.values)


def test_oversized_literal_breaks_the_link() -> None:
    reader = ResponseReader(max_literal=10)
    reader.feed(b"* 1 FETCH (BODY[] {11}\r\n")
    with pytest.raises(ResponseError):
        list(reader)


@given(st.binary(max_size=300))
def test_any_bytes_only_ever_raise_response_error(data: bytes) -> None:
    reader = ResponseReader(max_line=200, max_literal=200)
    reader.feed(data + b"\r\n")
    try:
        for r in reader:
            if isinstance(r, Untagged) and r.keyword == "FETCH":
                fetch_items(r.values)
    except ResponseError:
        pass
