"""The strict DATA reader, fed by hand: whole, byte by byte, and with trailing bytes."""

from __future__ import annotations

import asyncio

import pytest

from pushmail.smtp.data import BARE_EOL, LINE_TOO_LONG, MAX_LINE, TOO_BIG, DataResult, read_data


def run(wire: bytes, max_size: int | None = 10_000, chunk: int | None = None) -> DataResult:
    async def go() -> tuple[DataResult, bytes]:
        reader = asyncio.StreamReader(limit=MAX_LINE)
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
    [
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n.\r",
        b"x\ry\r\n",
        b"\r\n.\r\r\n",
    ],
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


@pytest.mark.parametrize("length", [MAX_LINE - 1, MAX_LINE + 1, 3 * MAX_LINE])
def test_over_long_line_is_refused_after_the_terminator(length: int) -> None:
    wire = b"a\r\n" + b"y" * length + b"\r\nb\r\n.\r\nNOOP\r\n"
    result = run(wire, max_size=None)
    assert result.error == LINE_TOO_LONG
    assert run.rest == b"NOOP\r\n"  # type: ignore[attr-defined]


def test_lines_longer_than_rfc5321_are_accepted_up_to_the_cap() -> None:
    for line in (b"z" * 998 + b"\r\n", b"z" * 5000 + b"\r\n", b"z" * (MAX_LINE - 2) + b"\r\n"):
        assert run(line + b".\r\n", max_size=None).content == line


def test_over_long_line_ending_in_dot_crlf_is_not_a_terminator() -> None:
    wire = b"y" * (MAX_LINE + 10) + b"\r\n.\r\n"
    assert run(wire, max_size=None).error == LINE_TOO_LONG
    wire = b"y" * (MAX_LINE + 10) + b".\r\n" + b".\r\n"
    assert run(wire, max_size=None).error == LINE_TOO_LONG


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_bare_lf_is_normalised_to_crlf(chunk: int | None) -> None:
    wire = b"Subject: lf\n\nline one\nline two\r\n..dot\nend\r\n.\r\nNOOP\r\n"
    result = run(wire, chunk=chunk)
    assert result == DataResult(
        content=b"Subject: lf\r\n\r\nline one\r\nline two\r\n.dot\r\nend\r\n"
    )
    assert run.rest == b"NOOP\r\n"  # type: ignore[attr-defined]


def test_a_message_of_lf_only_lines_longer_than_one_line_cap() -> None:
    body = b"0123456789" * 10 + b"\n"
    result = run(body * 2000 + b"\r\n.\r\n", max_size=None)
    assert result.content == (body[:-1] + b"\r\n") * 2000 + b"\r\n"


def test_size_cap_counts_normalised_bytes() -> None:
    body = b"x" * 98 + b"\n"
    assert run(body * 10 + b".\r\n", max_size=1000).closed  # ".\r\n" after LF: no end
    assert (
        run(body * 10 + b"\r\n.\r\n", max_size=1002).content == (body[:-1] + b"\r\n") * 10 + b"\r\n"
    )
    assert run(body * 10 + b"\r\n.\r\n", max_size=1001).error == TOO_BIG


def test_peer_closing_mid_data() -> None:
    assert run(b"Subject: a\r\n\r\nunfinished").closed
    assert run(b"Subject: a\r\n").closed


def test_no_cap() -> None:
    body = b"x\r\n" * 5000
    assert run(body + b".\r\n", max_size=None).content == body
