"""The strict DATA reader, fed by hand: whole, byte by byte, and with trailing bytes."""

from __future__ import annotations

import asyncio

import pytest

from pushmail.smtp.data import BARE_EOL, LINE_TOO_LONG, TOO_BIG, DataResult, read_data


def run(wire: bytes, max_size: int | None = 10_000, chunk: int | None = None) -> DataResult:
    async def go() -> tuple[DataResult, bytes]:
        reader = asyncio.StreamReader(limit=1001)
        step = chunk or len(wire) or 1
        for i in range(0, len(wire), step):
            reader.feed_data(wire[i : i + step])
        reader.feed_eof()
        result = await read_data(reader, max_size)
        return result, await reader.read()

    result, rest = asyncio.run(go())
    run.rest = rest  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_plain_message_and_dot_unstuffing(chunk: int | None) -> None:
    wire = b"Subject: hi\r\n\r\n..leading dot\r\n.\r\n"
    assert run(wire, chunk=chunk) == DataResult(content=b"Subject: hi\r\n\r\n.leading dot\r\n")


def test_trailing_bytes_are_left_for_the_next_command() -> None:
    assert run(b"a\r\n.\r\nQUIT\r\n").content == b"a\r\n"
    assert run.rest == b"QUIT\r\n"  # type: ignore[attr-defined]


def test_empty_message() -> None:
    assert run(b".\r\n") == DataResult(content=b"")


@pytest.mark.parametrize(
    "smuggle",
    [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"x\ry\r\n"],
)
def test_bare_cr_or_lf_never_ends_data_and_refuses_the_message(smuggle: bytes) -> None:
    wire = b"Subject: a\r\n\r\nfirst" + smuggle + b"MAIL FROM:<evil@x>\r\nsecond\r\n.\r\nNOOP\r\n"
    result = run(wire)
    assert result.error == BARE_EOL
    assert result.content == b""
    assert run.rest == b"NOOP\r\n"  # type: ignore[attr-defined]


def test_too_big_is_drained_then_refused() -> None:
    wire = b"x" * 98 + b"\r\n"
    result = run(wire * 20 + b".\r\nNOOP\r\n", max_size=1000)
    assert result.error == TOO_BIG
    assert run.rest == b"NOOP\r\n"  # type: ignore[attr-defined]


def test_exactly_at_the_cap_is_accepted() -> None:
    body = (b"x" * 98 + b"\r\n") * 10
    assert run(body + b".\r\n", max_size=len(body)).content == body
    assert run(body + b".\r\n", max_size=len(body) - 1).error == TOO_BIG


@pytest.mark.parametrize("length", [1001, 1003, 5000])
def test_over_long_line_is_refused_after_the_terminator(length: int) -> None:
    wire = b"a\r\n" + b"y" * length + b"\r\nb\r\n.\r\nNOOP\r\n"
    result = run(wire)
    assert result.error == LINE_TOO_LONG
    assert run.rest == b"NOOP\r\n"  # type: ignore[attr-defined]


def test_longest_legal_line_is_accepted() -> None:
    line = b"z" * 998 + b"\r\n"
    assert run(line + b".\r\n").content == line


def test_over_long_line_ending_in_dot_crlf_is_not_a_terminator() -> None:
    wire = b"y" * 2000 + b"\r\n.\r\n"
    assert run(wire).error == LINE_TOO_LONG
    wire = b"y" * 1500 + b".\r\n" + b".\r\n"
    assert run(wire).error == LINE_TOO_LONG


def test_peer_closing_mid_data() -> None:
    assert run(b"Subject: a\r\n\r\nunfinished").closed
    assert run(b"Subject: a\r\n").closed


def test_no_cap() -> None:
    body = b"x\r\n" * 5000
    assert run(body + b".\r\n", max_size=None).content == body
