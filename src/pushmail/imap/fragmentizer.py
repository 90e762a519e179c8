"""Cutting the client's byte stream into complete commands (sans-IO, design.md rule 1).

An IMAP command is one or more lines joined by literals: a line ending in ``{n}``
(synchronizing: the client waits for ``+``), ``{n+}`` (LITERAL+, RFC 7888) or
``~{n}`` (literal8, RFC 3516) is followed by exactly n bytes of data and then by the
rest of the command. The fragmentizer only knows that much grammar; it hands each
complete command, byte for byte, to the parser.

Literals are explicit states, counted against a cap before any byte is read
(design.md rule 4): a line over ``max_line`` is skipped without being buffered (only a
few trailing bytes are kept, to see whether it announced a literal), and an oversized
non-synchronizing literal is skipped byte-counted. When no command is pending the
fragmentizer holds no buffer at all (design.md rule 10: idle costs almost nothing).

A cap on the literal alone is not enough: one command may chain any number of
literals (``{n+}`` after ``{n+}``), each under the cap (issue 15: 20 x 50 MB from an
unauthenticated connection). ``FragCaps.max_command`` caps the whole command, lines
and literals, checked when each literal is announced; an APPEND, which carries a
message, may reach ``max_append`` instead. The driver swaps the caps when the
session's state changes (tiny before login, larger after).

The driver calls ``feed`` with what it received and then ``next_event`` until it
returns None. ``raw_lines`` is for IDLE (``DONE``) and AUTHENTICATE (SASL
responses): the driver sets it before the next ``next_event`` call, and every line
is then handed over as it is, literal markers uninterpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pushmail.imap.parse_lexer import parse_tag

__all__ = [
    "CommandReady",
    "FragCaps",
    "FragEvent",
    "Fragmentizer",
    "LineTooLong",
    "LiteralTooBig",
    "NeedContinuation",
]


@dataclass(frozen=True, slots=True)
class CommandReady:
    """One complete command: lines, literal markers and data, final CRLF included."""

    data: bytes


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was announced: send ``+ Ready`` for its data."""


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line went over the cap; it was dropped with the rest of its command."""

    tag: str | None


@dataclass(frozen=True, slots=True)
class LiteralTooBig:
    """A literal over the cap was announced; its command is dropped.

    For a synchronizing literal the client sends nothing more of the command (it
    waits for ``+``); a non-synchronizing one is skipped, byte-counted."""

    tag: str | None
    size: int
    synchronizing: bool
    total: bool = False  # the literal fits, but the command as a whole would not


@dataclass(frozen=True, slots=True)
class FragCaps:
    """The byte caps of one kind of connection (shared: one object per state, so a
    connection holds one reference for all of them)."""

    max_line: int = 65536
    max_literal: int = 50 * 1024 * 1024
    max_command: int | None = None  # one command, lines and literals; None: no cap
    max_append: int | None = None  # the same for an APPEND; None: as max_command


FragEvent = CommandReady | NeedContinuation | LineTooLong | LiteralTooBig

# The literal marker at the very end of a line: "{n}", "{n+}", "~{n}", "~{n+}".
_MARKER = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}\Z")
_MARKER_WINDOW = 32  # longest possible marker is 25 bytes
_APPEND = re.compile(rb"[^ \r\n]{1,64} APPEND ", re.IGNORECASE)
_NO_BUFFER = b""


class Fragmentizer:
    """Bytes in, ``FragEvent`` out; see the module docstring."""

    __slots__ = (
        "_buf",
        "_discarding",
        "_dropping",
        "_line_start",
        "_literal_left",
        "_pending",
        "_scan",
        "_skip_left",
        "_tail",
        "caps",
        "discarded",
        "raw_lines",
    )

    def __init__(
        self,
        max_line: int = 65536,
        max_literal: int = 50 * 1024 * 1024,
        caps: FragCaps | None = None,
    ) -> None:
        self.caps = caps if caps is not None else FragCaps(max_line, max_literal)
        self.raw_lines = False
        # The pending command from its first byte, then bytes not yet looked at.
        # While the rest of a command is being dropped it holds unread bytes only.
        self._buf: bytearray | bytes = _NO_BUFFER
        self._line_start = 0  # where the current line (or literal remainder) starts
        self._scan = 0  # where the search for CRLF resumes
        self._literal_left = 0  # literal bytes still to be taken into the command
        self._skip_left = 0  # literal bytes to drop unread
        self._discarding = False  # inside an over-long line, up to its CRLF
        self._dropping = False  # the rest of this command is dropped (error reported)
        self._tail = b""  # last bytes of the over-long line: did it announce a literal?
        self._pending: LineTooLong | None = None  # reported when the long line ends
        self.discarded = 0  # bytes dropped unbuffered, for the driver's statistics

    @property
    def max_line(self) -> int:
        return self.caps.max_line

    @property
    def max_literal(self) -> int:
        return self.caps.max_literal

    @property
    def buffered(self) -> int:
        """How many bytes are held (0 when idle)."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes; call ``next_event`` until it returns None."""
        if not data:
            return
        if isinstance(self._buf, bytearray):
            self._buf += data
        else:
            self._buf = bytearray(data)

    def next_event(self) -> FragEvent | None:
        """The next event, or None when more bytes are needed."""
        while True:
            buf = self._buf
            if not isinstance(buf, bytearray):
                return None
            if self._skip_left:
                if not self._skip(buf):
                    return None
            elif self._literal_left:
                if not self._take_literal(buf):
                    return None
            elif self._discarding:
                if not self._discard_line(buf):
                    return None
                if self._pending is not None:
                    event, self._pending = self._pending, None
                    return event
            else:
                end = buf.find(b"\r\n", self._scan)
                if end < 0 or end - self._line_start > self.caps.max_line:
                    if end < 0 and len(buf) - self._line_start <= self.caps.max_line:
                        self._scan = max(self._line_start, len(buf) - 1)
                        return None
                    self._start_discard(buf)
                    continue
                line_event = self._line_complete(buf, end)
                if line_event is not None:
                    return line_event

    # ------------------------------------------------------------------ internals

    def _consume(self, buf: bytearray, n: int) -> None:
        """Forget the first ``n`` bytes; drop the buffer when nothing is left."""
        del buf[:n]
        if not buf:
            self._buf = _NO_BUFFER
        self._line_start = self._scan = 0

    def _end_command(self) -> None:
        self._dropping = False
        self._literal_left = self._skip_left = 0

    def _skip(self, buf: bytearray) -> bool:
        """Drop literal bytes unread; True once the whole literal is gone."""
        n = min(self._skip_left, len(buf))
        self._skip_left -= n
        self.discarded += n
        self._consume(buf, n)
        return not self._skip_left

    def _take_literal(self, buf: bytearray) -> bool:
        """Take literal bytes into the command; True once all have come."""
        n = min(self._literal_left, len(buf) - self._line_start)
        self._literal_left -= n
        self._line_start += n
        self._scan = self._line_start
        return not self._literal_left

    def _start_discard(self, buf: bytearray) -> None:
        """The current line is over the cap: report it once, keep none of it."""
        if not self._dropping:
            tag = None if self.raw_lines else parse_tag(buf)
            self._pending = LineTooLong(tag)
        self._dropping = self._discarding = True
        self._tail = b""
        self.discarded += self._line_start
        self._consume(buf, self._line_start)

    def _discard_line(self, buf: bytearray) -> bool:
        """Drop bytes up to the next CRLF; True once it has come."""
        end = buf.find(b"\r\n")
        if end < 0:
            keep = 1 if buf.endswith(b"\r") else 0  # a CR whose LF is yet to come
            cut = len(buf) - keep
            self._tail = (self._tail + buf[max(0, cut - _MARKER_WINDOW) : cut])[-_MARKER_WINDOW:]
            self.discarded += cut
            self._consume(buf, cut)
            return False
        self._tail = (self._tail + buf[max(0, end - _MARKER_WINDOW) : end])[-_MARKER_WINDOW:]
        self.discarded += end + 2
        self._consume(buf, end + 2)
        self._discarding = False
        m = None if self.raw_lines else _MARKER.search(self._tail)
        if m is not None and m.group(2):
            self._skip_left = int(m.group(1))  # a literal+ follows: skip it too
        else:
            self._end_command()  # a synchronizing literal never comes without "+"
        return True

    def _line_complete(self, buf: bytearray, end: int) -> FragEvent | None:
        """A whole line ``buf[line_start:end]`` + CRLF is here; decide what follows."""
        after = end + 2
        if self.raw_lines and not self._dropping:
            data = bytes(buf[:after])
            self._consume(buf, after)
            return CommandReady(data)
        m = _MARKER.search(buf, max(self._line_start, end - _MARKER_WINDOW), end)
        if m is None:
            return self._command_complete(buf, after)
        size, synchronizing = int(m.group(1)), not m.group(2)
        if self._dropping:
            self._consume(buf, after)
            if synchronizing:
                self._end_command()
            else:
                self._skip_left = size
            return None
        over_total = self._over_total(buf, after + size)
        if size > self.caps.max_literal or over_total:
            tag = parse_tag(buf)
            self._consume(buf, after)
            if synchronizing:
                self._end_command()
            else:
                self._dropping = True
                self._skip_left = size
            return LiteralTooBig(tag, size, synchronizing, over_total)
        self._literal_left = size
        self._line_start = self._scan = after
        return NeedContinuation() if synchronizing else None

    def _over_total(self, buf: bytearray, total: int) -> bool:
        """Whether a command of ``total`` bytes so far (the buffer starts with it)
        passes its cap."""
        caps = self.caps
        cap = caps.max_command
        if caps.max_append is not None and _APPEND.match(buf, 0, 72):
            cap = caps.max_append
        return cap is not None and total > cap

    def _command_complete(self, buf: bytearray, after: int) -> CommandReady | None:
        if self._dropping:
            self._consume(buf, after)
            self._end_command()
            return None
        data = bytes(buf[:after])
        self._consume(buf, after)
        return CommandReady(data)
