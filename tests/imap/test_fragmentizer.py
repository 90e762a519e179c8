"""The fragmentizer: each case fed whole, byte by byte, in random chunks, and followed
by the start of another command (design.md rule 11)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.imap.fragmentizer import (
    CommandReady,
    FragCaps,
    FragEvent,
    Fragmentizer,
    LineTooLong,
    LiteralTooBig,
    NeedContinuation,
)

MAX_LINE = 40
MAX_LITERAL = 20

# (name, bytes in, events out). The limits above apply.
CASES: list[tuple[str, bytes, list[FragEvent]]] = [
    ("simple", b"a NOOP\r\n", [CommandReady(b"a NOOP\r\n")]),
    (
        "two commands",
        b"a NOOP\r\nb CAPABILITY\r\n",
        [CommandReady(b"a NOOP\r\n"), CommandReady(b"b CAPABILITY\r\n")],
    ),
    (
        "sync literal",
        b"a LOGIN {3}\r\nbob pw\r\n",
        [NeedContinuation(), CommandReady(b"a LOGIN {3}\r\nbob pw\r\n")],
    ),
    (
        "two sync literals",
        b"a LOGIN {3}\r\nbob {2}\r\npw\r\n",
        [NeedContinuation(), NeedContinuation(), CommandReady(b"a LOGIN {3}\r\nbob {2}\r\npw\r\n")],
    ),
    (
        "non-sync literal",
        b"a LOGIN {3+}\r\nbob pw\r\n",
        [CommandReady(b"a LOGIN {3+}\r\nbob pw\r\n")],
    ),
    (
        "literal holding CRLF and a marker",
        b"a APPEND x {9+}\r\nab\r\n{3}\r\n\r\n",
        [CommandReady(b"a APPEND x {9+}\r\nab\r\n{3}\r\n\r\n")],
    ),
    (
        "literal8",
        b"a APPEND x ~{2}\r\n\x00\x01\r\n",
        [NeedContinuation(), CommandReady(b"a APPEND x ~{2}\r\n\x00\x01\r\n")],
    ),
    (
        "empty sync literal",
        b"a LOGIN {0}\r\n pw\r\n",
        [NeedContinuation(), CommandReady(b"a LOGIN {0}\r\n pw\r\n")],
    ),
    ("bare LF is not a line end", b"a NOOP\nb\r\n", [CommandReady(b"a NOOP\nb\r\n")]),
    (
        "line too long, then recovery",
        b"a " + b"x" * 60 + b"\r\nb NOOP\r\n",
        [LineTooLong("a"), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "line too long without a tag",
        b"(" + b"x" * 60 + b"\r\nb NOOP\r\n",
        [LineTooLong(None), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "second line too long",
        b"a LOGIN {1+}\r\nx " + b"y" * 50 + b"\r\nb NOOP\r\n",
        [LineTooLong("a"), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "too-long line announcing a literal+: literal skipped too",
        b"a " + b"x" * 50 + b" {4+}\r\nNOOP\r\nb NOOP\r\n",
        [LineTooLong("a"), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "literal data does not count against the line cap",
        b"a X {15+}\r\n" + b"z" * 15 + b" " + b"w" * 30 + b"\r\n",
        [CommandReady(b"a X {15+}\r\n" + b"z" * 15 + b" " + b"w" * 30 + b"\r\n")],
    ),
    (
        "sync literal too big: the command ends there",
        b"a APPEND x {21}\r\nb NOOP\r\n",
        [LiteralTooBig("a", 21, True), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "non-sync literal too big: skipped with the rest of the command",
        b"a APPEND x {25+}\r\n" + b"q" * 25 + b" more {2+}\r\nzz tail\r\nb NOOP\r\n",
        [LiteralTooBig("a", 25, False), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "literal8 too big",
        b"t1 APPEND x ~{99+}\r\n" + b"\x00" * 99 + b"\r\nb NOOP\r\n",
        [LiteralTooBig("t1", 99, False), CommandReady(b"b NOOP\r\n")],
    ),
    (
        "a huge announced size is only a number",
        b"a APPEND x {99999999999999999999}\r\nb NOOP\r\n",
        [LiteralTooBig("a", 99999999999999999999, True), CommandReady(b"b NOOP\r\n")],
    ),
]

# A few bytes of another command, which must not produce an event nor be lost.
TRAILER = b"z9 NO"


def _drain(f: Fragmentizer) -> list[FragEvent]:
    out: list[FragEvent] = []
    while (event := f.next_event()) is not None:
        out.append(event)
    return out


def _run(chunks: list[bytes]) -> tuple[list[FragEvent], Fragmentizer]:
    f = Fragmentizer(max_line=MAX_LINE, max_literal=MAX_LITERAL)
    events: list[FragEvent] = []
    for chunk in chunks:
        f.feed(chunk)
        events += _drain(f)
    return events, f


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_whole(name: str, data: bytes, expected: list[FragEvent]) -> None:
    events, f = _run([data])
    assert events == expected
    assert f.buffered == 0


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_byte_by_byte(name: str, data: bytes, expected: list[FragEvent]) -> None:
    events, f = _run([data[i : i + 1] for i in range(len(data))])
    assert events == expected
    assert f.buffered == 0


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_with_trailing_bytes(name: str, data: bytes, expected: list[FragEvent]) -> None:
    events, f = _run([data + TRAILER])
    assert events == expected
    assert f.buffered == len(TRAILER)
    f.feed(b"OP\r\n")
    assert _drain(f) == [CommandReady(b"z9 NOOP\r\n")]


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(min_value=0, max_value=200)))
def test_random_chunks(case: tuple[str, bytes, list[FragEvent]], cuts: list[int]) -> None:
    _, data, expected = case
    points = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    events, _ = _run(chunks)
    assert events == expected


def test_continuation_comes_before_the_literal_is_sent() -> None:
    f = Fragmentizer()
    f.feed(b"a LOGIN {3}\r\n")
    assert f.next_event() == NeedContinuation()
    assert f.next_event() is None  # the client waits for "+": nothing more to do
    f.feed(b"bob {2}\r")
    assert f.next_event() is None
    f.feed(b"\n")
    assert f.next_event() == NeedContinuation()
    f.feed(b"pw\r\n")
    assert f.next_event() == CommandReady(b"a LOGIN {3}\r\nbob {2}\r\npw\r\n")


def test_raw_lines_ignore_literal_markers() -> None:
    f = Fragmentizer()
    f.feed(b"a IDLE\r\nDONE {5}\r\nb NOOP\r\n")
    assert f.next_event() == CommandReady(b"a IDLE\r\n")
    f.raw_lines = True
    assert f.next_event() == CommandReady(b"DONE {5}\r\n")
    f.raw_lines = False
    assert f.next_event() == CommandReady(b"b NOOP\r\n")


def test_raw_line_too_long_has_no_tag() -> None:
    f = Fragmentizer(max_line=10)
    f.raw_lines = True
    f.feed(b"dGVzdA" * 10 + b"\r\nDONE\r\n")
    assert _drain(f) == [LineTooLong(None), CommandReady(b"DONE\r\n")]


def test_idle_holds_no_buffer() -> None:
    f = Fragmentizer()
    f.feed(b"a NOOP\r\n")
    _drain(f)
    assert f.buffered == 0
    assert not isinstance(f._buf, bytearray)  # the shared empty bytes, not a buffer


def test_oversized_line_is_not_buffered() -> None:
    f = Fragmentizer(max_line=100)
    f.feed(b"a ")
    for _ in range(1000):
        f.feed(b"x" * 1000)
        assert f.next_event() is None
        assert f.buffered < 200
    f.feed(b"\r\n")
    assert f.next_event() == LineTooLong("a")
    assert f.discarded >= 1_000_000


def test_oversized_literal_is_not_buffered() -> None:
    f = Fragmentizer(max_literal=10)
    f.feed(b"a APPEND x {1000000+}\r\n")
    assert f.next_event() == LiteralTooBig("a", 1_000_000, False)
    for _ in range(1000):
        f.feed(b"y" * 1000)
        assert f.next_event() is None
        assert f.buffered == 0
    f.feed(b"\r\nb NOOP\r\n")
    assert _drain(f) == [CommandReady(b"b NOOP\r\n")]


def test_byte_at_a_time_long_command_is_linear() -> None:
    # A quadratic rescan would take minutes here (and trip the test timeout).
    f = Fragmentizer(max_line=300_000)
    line = b"a SEARCH " + b"X" * 200_000 + b"\r\n"
    for i in range(len(line)):
        f.feed(line[i : i + 1])
        event = f.next_event()
    assert event == CommandReady(line)


def test_empty_feed_is_harmless() -> None:
    f = Fragmentizer()
    f.feed(b"")
    assert f.next_event() is None
    assert f.buffered == 0


def test_command_total_cap_counts_every_literal() -> None:
    f = Fragmentizer(caps=FragCaps(1000, 1000, max_command=2500, max_append=10_000))
    f.feed(b"a SEARCH TEXT {900+}\r\n" + b"x" * 900 + b" TEXT {900+}\r\n" + b"x" * 900)
    assert f.next_event() is None  # 1,800 bytes so far: under the cap
    f.feed(b" TEXT {900+}\r\n" + b"x" * 900 + b" TEXT {5}\r\n")
    event = f.next_event()
    assert isinstance(event, LiteralTooBig) and event.total and event.tag == "a"
    assert f.next_event() is None
    assert f.buffered == 0  # the literal is skipped, not held
    f.feed(b"b NOOP\r\n")
    assert f.next_event() == CommandReady(b"b NOOP\r\n")
    # An APPEND may reach max_append.
    f.feed(b"c APPEND INBOX {900+}\r\n" + b"m" * 900 + b" {900+}\r\n" + b"m" * 900)
    f.feed(b" {900+}\r\n" + b"m" * 900 + b"\r\n")
    event = f.next_event()
    assert isinstance(event, CommandReady) and len(event.data) > 2500
