"""Reading a server's responses (sans-IO, design.md rule 1): bytes in, typed responses out.

Framing reuses the server's ``Fragmentizer``: a response, like a command, is lines
joined by ``{n}`` literals, so the same counted state machine cuts the stream into whole
responses (a literal is checked against a cap before any of it is buffered). Each frame
is then parsed here into one of three values:

* ``Continuation`` — ``+ text`` (IDLE's ``+ idling``, a synchronizing literal's go-ahead);
* ``Tagged`` — ``tag OK/NO/BAD [code] text``, the end of a command;
* ``Untagged`` — ``* ...``: a status (``OK``/``NO``/``BAD``/``BYE``/``PREAUTH`` with an
  optional response code), a numbered message datum (``* 5 EXISTS``, ``* 5 FETCH (...)``)
  or data (``* CAPABILITY ...``, ``* SEARCH 1 2``, ``* STATUS box (...)``).

Data is parsed generically into ``Value`` trees (numbers, atoms, strings, NIL,
parenthesised lists): the watcher needs only a few fields from a few responses, and a
generic reader cannot be thrown off by a server's extension data. Malformed input raises
``ResponseError`` and nothing else (design.md rule 7); the connection treats it as a broken
link.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pushmail.imap.fragmentizer import (
    CommandReady,
    Fragmentizer,
    LineTooLong,
    LiteralTooBig,
    NeedContinuation,
)

__all__ = [
    "Continuation",
    "Response",
    "ResponseError",
    "ResponseReader",
    "Tagged",
    "Untagged",
    "Value",
    "count_uids",
    "fetch_items",
    "parse_response",
    "parse_values",
    "status_values",
]

# An atom is a str, a number an int, a quoted or literal string bytes, NIL None.
Value = int | str | bytes | None | tuple["Value", ...]

STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})


class ResponseError(ValueError):
    """The server sent something that is not a response; the link is not trusted."""


@dataclass(frozen=True, slots=True)
class Continuation:
    text: str


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: str
    status: str  # OK, NO or BAD
    code: str | None  # e.g. "UIDVALIDITY", "AUTHENTICATIONFAILED"
    code_args: tuple[Value, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Untagged:
    """``* [number] keyword values`` (a status response has a code and text instead)."""

    keyword: str
    number: int | None = None
    values: tuple[Value, ...] = ()
    code: str | None = None
    code_args: tuple[Value, ...] = ()
    text: str = ""


Response = Continuation | Tagged | Untagged


class ResponseReader:
    """Bytes in, whole ``Response`` values out. ``max_literal`` caps a literal (a
    message body); ``max_line`` one line. Over either cap the link is broken."""

    __slots__ = ("_frames",)

    def __init__(self, max_line: int = 1 << 20, max_literal: int = 256 << 20) -> None:
        self._frames = Fragmentizer(max_line=max_line, max_literal=max_literal)

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)

    def __iter__(self) -> Iterator[Response]:
        """Every response complete so far (the rest stays buffered)."""
        while True:
            event = self._frames.next_event()
            if event is None:
                return
            if isinstance(event, NeedContinuation):
                continue  # a server's {n} is followed by its data without asking
            if isinstance(event, LineTooLong | LiteralTooBig):
                raise ResponseError(f"response over the size cap: {event}")
            assert isinstance(event, CommandReady)
            yield parse_response(event.data)


def parse_response(frame: bytes) -> Response:
    """response = continue-req / response-data / response-tagged (RFC 3501 §9)."""
    if not frame.endswith(b"\r\n"):
        raise ResponseError("response without CRLF")
    body = frame[:-2]
    if body.startswith(b"+"):
        return Continuation(_text(body[1:].lstrip(b" ")))
    head, sp, rest = body.partition(b" ")
    if not sp or not head:
        raise ResponseError(f"malformed response: {_clip(body)}")
    if head == b"*":
        return _untagged(rest)
    status, _, after = rest.partition(b" ")
    word = status.upper().decode("ascii", "replace")
    if word not in ("OK", "NO", "BAD"):
        raise ResponseError(f"malformed tagged response: {_clip(body)}")
    code, args, text = _resp_text(after)
    return Tagged(head.decode("ascii", "replace"), word, code, args, text)


def _untagged(rest: bytes) -> Untagged:
    first, _, after = rest.partition(b" ")
    if first.isdigit():
        number = int(first)
        word, _, data = after.partition(b" ")
        if not word:
            raise ResponseError("numbered response without a keyword")
        return Untagged(word.upper().decode("ascii", "replace"), number, parse_values(data))
    name = first.upper().decode("ascii", "replace")
    if not name:
        raise ResponseError("empty untagged response")
    if name in STATUS_WORDS:
        code, args, text = _resp_text(after)
        return Untagged(name, code=code, code_args=args, text=text)
    return Untagged(name, values=parse_values(after))


def _resp_text(data: bytes) -> tuple[str | None, tuple[Value, ...], str]:
    """resp-text = ["[" resp-text-code "]" SP] text"""
    if not data.startswith(b"["):
        return None, (), _text(data)
    end = data.find(b"]")
    if end < 0:
        raise ResponseError("unterminated response code")
    inner = data[1:end]
    name, _, args = inner.partition(b" ")
    return name.upper().decode("ascii", "replace"), parse_values(args), _text(data[end + 1 :])


def _text(data: bytes) -> str:
    return data.strip().decode("utf-8", "replace")


def _clip(data: bytes) -> str:
    return data[:80].decode("ascii", "replace")


# -------------------------------------------------------------------------- values

_DELIMS = b' ()"{\r\n'


class _Lexer:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def values(self, closing: bool) -> tuple[Value, ...]:
        out: list[Value] = []
        data = self.data
        while True:
            while self.pos < len(data) and data[self.pos] == 0x20:
                self.pos += 1
            if self.pos >= len(data):
                if closing:
                    raise ResponseError("unbalanced parenthesis")
                return tuple(out)
            c = data[self.pos]
            if c == 0x29:  # ")"
                if not closing:
                    raise ResponseError("unexpected ')'")
                self.pos += 1
                return tuple(out)
            out.append(self.value(c))

    def value(self, c: int) -> Value:
        if c == 0x28:  # "("
            self.pos += 1
            return self.values(closing=True)
        if c == 0x22:  # '"'
            return self.quoted()
        if c == 0x7B:  # "{"
            return self.literal()
        if c == 0x7E and self.data[self.pos + 1 : self.pos + 2] == b"{":  # literal8
            self.pos += 1
            return self.literal()
        return self.atom()

    def quoted(self) -> bytes:
        out = bytearray()
        i = self.pos + 1
        data = self.data
        while i < len(data):
            c = data[i]
            if c == 0x5C and i + 1 < len(data):
                out.append(data[i + 1])
                i += 2
            elif c == 0x22:
                self.pos = i + 1
                return bytes(out)
            elif c in (0x0D, 0x0A):
                break
            else:
                out.append(c)
                i += 1
        raise ResponseError("unterminated quoted string")

    def literal(self) -> bytes:
        end = self.data.find(b"}\r\n", self.pos)
        digits = self.data[self.pos + 1 : end].rstrip(b"+") if end > 0 else b""
        if not digits.isdigit():
            raise ResponseError("malformed literal")
        start = end + 3
        size = int(digits)
        if start + size > len(self.data):
            raise ResponseError("literal shorter than announced")
        self.pos = start + size
        return self.data[start : self.pos]

    def atom(self) -> Value:
        """An atom; a ``[...]`` inside it (``BODY[HEADER.FIELDS (A B)]``) is kept whole."""
        data = self.data
        start = i = self.pos
        while i < len(data) and data[i] not in _DELIMS:
            if data[i] == 0x5B:  # "["
                close = data.find(b"]", i)
                if close < 0:
                    raise ResponseError("unterminated '['")
                i = close
            i += 1
        if i == start:
            raise ResponseError(f"unexpected byte {data[i : i + 1]!r}")
        self.pos = i
        word = data[start:i].decode("utf-8", "replace")
        if word.isdigit() and word.isascii():
            return int(word)
        return None if word.upper() == "NIL" else word


def parse_values(data: bytes) -> tuple[Value, ...]:
    """The space-separated values of a response's data part."""
    return _Lexer(data).values(closing=False)


def fetch_items(values: tuple[Value, ...]) -> dict[str, Value]:
    """``* n FETCH (NAME value NAME value ...)`` as a dict with upper-cased names."""
    if len(values) != 1 or not isinstance(values[0], tuple) or len(values[0]) % 2:
        raise ResponseError("malformed FETCH data")
    items = values[0]
    out: dict[str, Value] = {}
    for i in range(0, len(items), 2):
        name = items[i]
        if not isinstance(name, str):
            raise ResponseError("FETCH item name is not an atom")
        out[name.upper()] = items[i + 1]
    return out


def count_uids(value: Value) -> int:
    """How many UIDs a ``VANISHED`` sequence set names (``1:3,7`` is 4), without
    expanding it; 0 for anything that is not a plain UID set."""
    if isinstance(value, int):
        return 1
    if not isinstance(value, str):
        return 0
    total = 0
    for part in value.split(","):
        lo, _, hi = part.partition(":")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return 0
        total += abs(int(hi) - int(lo)) + 1 if hi else 1
    return total


def status_values(attrs: Value) -> dict[str, int]:
    if not isinstance(attrs, tuple):
        raise ResponseError("malformed STATUS data")
    out: dict[str, int] = {}
    for i in range(0, len(attrs) - 1, 2):
        name, value = attrs[i], attrs[i + 1]
        if isinstance(name, str) and isinstance(value, int):
            out[name.upper()] = value
    return out
