"""Turning values into IMAP response bytes (RFC 3501 §4, §7).

Primitives first (atoms, quoted strings, literals, NIL), then the three kinds of
response line. Everything returns ``bytes`` so responses can be joined without
re-encoding. No I/O here: the driver queues the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pushmail.imap.mutf7 import encode_mutf7

# One regular-expression scan instead of a Python test per byte: these run for every
# string of every FETCH response and of every delivery's ENVELOPE.
_NOT_ATOM = re.compile(rb'[(){ %*"\\\]\x00-\x1f\x7f-\xff]')
_NOT_QUOTABLE = re.compile(rb"[\x00\n\r\x80-\xff]")
_QUOTABLE_MAX = 1024  # longer strings go as literals: easier on clients' line buffers

NIL = b"NIL"


def is_atom(data: bytes) -> bool:
    return bool(data) and _NOT_ATOM.search(data) is None


def literal(data: bytes) -> bytes:
    """A synchronizing-style literal as servers send it: ``{n}\\r\\n`` + data."""
    return b"{%d}\r\n" % len(data) + data


def quoted(data: bytes | str) -> bytes:
    """A quoted string; falls back to a literal where quoting cannot carry the data
    (CR, LF, NUL, 8-bit or very long)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > _QUOTABLE_MAX or _NOT_QUOTABLE.search(data) is not None:
        return literal(data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(data: bytes | str) -> bytes:
    """An IMAP ``string``: quoted where possible, literal otherwise."""
    return quoted(data)


def nstring(data: bytes | str | None) -> bytes:
    return NIL if data is None else quoted(data)


def astring(data: bytes | str) -> bytes:
    """An ``astring``: a bare atom where the grammar allows, else a string."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return raw if is_atom(raw) and raw.upper() != NIL else quoted(raw)


def mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name: modified UTF-7 (RFC 3501 §5.1.3) unless UTF8=ACCEPT is on."""
    if name.upper() == "INBOX":
        return b"INBOX"
    return astring(name if utf8 else encode_mutf7(name))


def paren(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    return paren(f.encode("utf-8") for f in sorted(flags))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_time(value: datetime) -> bytes:
    """``date-time`` as INTERNALDATE: ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    text = (
        f'"{value.day:2d}-{_MONTHS[value.month - 1]}-{value.year:04d} '
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )
    return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class Tagged:
    """``tag OK|NO|BAD [code] text``: the completion of a command."""

    tag: str
    status: str
    text: str
    code: str | None = None

    def encode(self) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{self.tag} {self.status} {code}{self.text}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Untagged:
    """``* <data>``: ``data`` is already encoded (it may hold literals)."""

    data: bytes

    def encode(self) -> bytes:
        return b"* " + self.data + b"\r\n"


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text``: the server is ready for a literal, IDLE, or a SASL step."""

    text: bytes = b"Ready"

    def encode(self) -> bytes:
        return b"+ " + self.text + b"\r\n"


Response = Tagged | Untagged | Continuation


def untagged_status(status: str, text: str, code: str | None = None) -> Untagged:
    c = f"[{code}] " if code else ""
    return Untagged(f"{status} {c}{text}".encode())
