"""A tiny reader for IMAP parenthesised data (quoted, literal, NIL, number, atom).

Tests use it to check that what we encode is well-formed and to look inside it,
independently of the code that wrote it.
"""

from __future__ import annotations

import re

Value = bytes | int | None | list["Value"]

_ATOM = re.compile(rb"[^\s()\"{}]+")


def read(data: bytes) -> Value:
    value, pos = _read(data, 0)
    if pos != len(data):
        raise ValueError(f"trailing data at {pos}: {data[pos : pos + 20]!r}")
    return value


def _read(data: bytes, pos: int) -> tuple[Value, int]:
    ch = data[pos : pos + 1]
    if ch == b"(":
        items: list[Value] = []
        pos += 1
        while data[pos : pos + 1] != b")":
            if data[pos : pos + 1] == b" ":
                pos += 1
                continue
            if pos >= len(data):
                raise ValueError("unclosed list")
            item, pos = _read(data, pos)
            items.append(item)
        return items, pos + 1
    if ch == b'"':
        out = bytearray()
        pos += 1
        while data[pos : pos + 1] != b'"':
            if pos >= len(data):
                raise ValueError("unclosed string")
            if data[pos : pos + 1] == b"\\":
                pos += 1
            out += data[pos : pos + 1]
            pos += 1
        return bytes(out), pos + 1
    if ch == b"{":
        end = data.index(b"}\r\n", pos)
        n = int(data[pos + 1 : end])
        start = end + 3
        return data[start : start + n], start + n
    m = _ATOM.match(data, pos)
    if not m:
        raise ValueError(f"unexpected {data[pos : pos + 20]!r} at {pos}")
    word = m.group()
    if word == b"NIL":
        return None, m.end()
    if word.isdigit():
        return int(word), m.end()
    return word, m.end()
