"""A MIME tree that remembers where every part lies in the original bytes.

The stdlib ``email`` package parses headers and Content-Type parameters well, but it
re-serialises parts instead of keeping their bytes, and IMAP's ``BODY[1.2]``,
``BODY[1.MIME]`` and sizes in BODYSTRUCTURE must be byte-exact slices of the message
as stored (as Dovecot serves them). So this module only *locates* things: the end of
each header block and the multipart delimiter lines, by byte offset, using the
boundary that ``email`` parsed out of Content-Type. Header fields themselves are
always parsed by ``email``.

Header blocks are handed to ``email`` decoded as Latin-1: that maps every byte to one
character and back, so raw 8-bit header text (common in real mail) survives a round
trip exactly, and ``email`` never swaps it for a replacement-character ``Header``.

Nesting is bounded (``MAX_DEPTH``, ``MAX_PARTS``): past the bound a part is kept as an
opaque leaf, so a hostile message costs bounded time and no recursion error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

MAX_DEPTH = 40
MAX_PARTS = 5000

_PARSER = HeaderParser(policy=compat32)


@dataclass(slots=True)
class RawPart:
    """One MIME entity: ``raw[start:body_start]`` is its header block (with the blank
    line), ``raw[body_start:end]`` its body. ``children`` are the parts of a multipart;
    ``message`` is the embedded message of a message/rfc822 part."""

    start: int
    body_start: int
    end: int
    header: Message
    maintype: str
    subtype: str
    children: list[RawPart] = field(default_factory=list)
    message: RawPart | None = None

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    def header_bytes(self, raw: bytes) -> bytes:
        return raw[self.start : self.body_start]

    def body_bytes(self, raw: bytes) -> bytes:
        return raw[self.body_start : self.end]


# A line break followed by a blank continues the field (RFC 5322 §2.2.3).
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
# The fields whose values are parsed as MIME structure: RFC 2045 allows comments in
# them (``text/plain (plain text); charset=us-ascii (ascii)``), ``email`` does not.
_MIME_FIELDS = ("content-type", "content-disposition", "content-transfer-encoding")


def parse_header_block(block: bytes) -> Message:
    """Parse a header block with ``email`` (Latin-1 so that bytes survive exactly).

    The block is unfolded first: ``email`` keeps folds inside values, so a folded
    ``boundary="foo\r\n bar"`` or ``name=`` would otherwise be read with the line
    break in it, and every parameter read would have to unfold again. The exact
    bytes (BODY[n.MIME], HEADER) are sliced from the message, never from this.
    """
    header = _PARSER.parsestr(_FOLD.sub(b"", block).decode("latin-1"), headersonly=True)
    for name in _MIME_FIELDS:
        value = header.get(name)
        if value is not None and "(" in value:
            header.replace_header(name, strip_comments(value))
    return header


def strip_comments(value: str) -> str:
    """``value`` without its RFC 5322 comments (nested, escaped), quoted strings kept;
    each comment becomes one blank so that the words around it stay apart."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(ch)
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
        elif ch == '"' and not depth:
            quoted = True
        elif ch == "(":
            depth += 1
            if depth == 1:
                out.append(" ")
            continue
        elif ch == ")" and depth:
            depth -= 1
            continue
        if not depth:
            out.append(ch)
    return "".join(out)


def raw_value(value: str) -> bytes:
    """A header value as ``email`` stored it, back to its original bytes, unfolded."""
    return value.replace("\r", "").replace("\n", "").encode("latin-1", "replace")


def find_body_start(raw: bytes, start: int, end: int) -> int:
    """Offset just after the blank line that ends the header block at ``start``
    (``end`` when there is none: then the whole entity is header)."""
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    crlf = raw.find(b"\n\r\n", start, end)
    limit = end if crlf < 0 else crlf + 2
    lf = raw.find(b"\n\n", start, limit)
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return end


def _line_end(raw: bytes, pos: int, end: int) -> int | None:
    """If only blanks remain on the line at ``pos``, the offset after its EOL."""
    while pos < end and raw[pos] in (0x20, 0x09):
        pos += 1
    if pos >= end:
        return end
    if raw.startswith(b"\r\n", pos, end):
        return pos + 2
    if raw[pos] in (0x0A, 0x0D):
        return pos + 1
    return None


def find_delimiters(
    raw: bytes, boundary: bytes, start: int, end: int
) -> list[tuple[int, int, bool]]:
    """The delimiter lines of a multipart body in ``raw[start:end]`` (RFC 2046 §5.1.1).

    Each is ``(line_start, after_eol, is_close)``. A delimiter starts a line with
    ``--boundary``, then optionally ``--`` (the close delimiter), then only blanks.
    """
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = start
    while True:
        i = raw.find(marker, pos, end)
        if i < 0:
            return found
        if i == start or raw[i - 1] == 0x0A:
            j = i + len(marker)
            close = raw.startswith(b"--", j, end)
            after = _line_end(raw, j + 2 if close else j, end)
            if after is not None:
                found.append((i, after, close))
                if close:
                    return found
                pos = after
                continue
        pos = i + 1


def _content_end(raw: bytes, line_start: int, floor: int) -> int:
    """Where a part's content ends before the delimiter line at ``line_start``: the
    CRLF that precedes a delimiter belongs to the delimiter (RFC 2046 §5.1.1)."""
    if line_start - 2 >= floor and raw[line_start - 2 : line_start] == b"\r\n":
        return line_start - 2
    if line_start - 1 >= floor and raw[line_start - 1] == 0x0A:
        return line_start - 1
    return max(line_start, floor)


class _Budget:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = 0


def parse_message(raw: bytes) -> RawPart:
    """The MIME tree of a whole message."""
    return _parse(raw, 0, len(raw), "text/plain", 0, _Budget())


def _boundary(header: Message) -> bytes | None:
    value = header.get_boundary()
    if not value:
        return None
    return value.encode("latin-1", "replace")


def _parse(raw: bytes, start: int, end: int, default: str, depth: int, budget: _Budget) -> RawPart:
    budget.parts += 1
    body_start = find_body_start(raw, start, end)
    header = parse_header_block(raw[start:body_start])
    header.set_default_type(default)
    maintype, _, subtype = header.get_content_type().partition("/")
    part = RawPart(start, body_start, end, header, maintype, subtype)
    deep = depth >= MAX_DEPTH or budget.parts >= MAX_PARTS
    if maintype == "multipart":
        if deep:  # past the bounds: an opaque leaf
            part.maintype, part.subtype = "text", "plain"
            return part
        boundary = _boundary(header)
        child_default = "message/rfc822" if subtype == "digest" else "text/plain"
        ranges = [] if boundary is None else _child_ranges(raw, boundary, body_start, end)
        for lo, hi in ranges:
            part.children.append(_parse(raw, lo, hi, child_default, depth + 1, budget))
            if budget.parts >= MAX_PARTS:
                break
        if not part.children:
            # No boundary, or no delimiter found: the grammar needs one body part, and
            # Dovecot shows (and serves) one empty text/plain part; so do we.
            part.children.append(_empty_part(body_start))
    elif (maintype, subtype) == ("message", "rfc822") and not deep:
        part.message = _parse(raw, body_start, end, "text/plain", depth + 1, budget)
    return part


def _empty_part(at: int) -> RawPart:
    header = parse_header_block(b"")
    return RawPart(at, at, at, header, "text", "plain")


def _child_ranges(raw: bytes, boundary: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges of the body parts between the delimiters."""
    delims = find_delimiters(raw, boundary, start, end)
    ranges: list[tuple[int, int]] = []
    for k, (_, after, close) in enumerate(delims):
        if close:
            break
        # Without a close delimiter the last part runs to the end.
        stop = _content_end(raw, delims[k + 1][0], after) if k + 1 < len(delims) else end
        ranges.append((after, stop))
    return ranges
