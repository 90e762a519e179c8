"""GETMETADATA and SETMETADATA (RFC 5464 §5): one function per ABNF rule, as in the
other ``parse_*``. Entry names are checked here (§3.2), so a bad one is ``BAD``."""

from __future__ import annotations

import re

from pushmail.imap.commands_metadata import Depth, Metadata
from pushmail.imap.parse_lexer import (
    UINT32_MAX,
    Reader,
    paren_list,
    parse_astring,
    parse_literal8,
    parse_mailbox,
    parse_nstring,
    parse_number,
    parse_upper_atom,
)

# §3.2: no "*" or "%", no control characters, no "//", no trailing "/"; and the
# first component is "private" or "shared" (any case: names ignore case).
_ENTRY = re.compile(r"/(?:private|shared)(?:/[^/*%\x00-\x19\x7f]+)*", re.IGNORECASE)
# How many entries one command may name: the per-user limit bounds what is stored,
# this bounds what one command line makes the server do.
MAX_ENTRIES_PER_COMMAND = 1000


def parse_entry(r: Reader) -> str:
    """entry = astring   ; a slash-separated name under /private or /shared"""
    raw = parse_astring(r)
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        r.fail("an entry name must be UTF-8")
    if _ENTRY.fullmatch(name) is None:
        r.fail(f"invalid entry name {name!r} (RFC 5464 section 3.2)")
    return name


def _entries(r: Reader) -> list[str]:
    """entries = entry / "(" entry *(SP entry) ")" """
    if r.at(b"("):
        return paren_list(r, parse_entry, empty_ok=False)
    return [parse_entry(r)]


def _option(r: Reader) -> tuple[str, int | Depth]:
    """getmetadata-option = "MAXSIZE" SP number / "DEPTH" SP ("0" / "1" / "infinity")"""
    name = parse_upper_atom(r)
    r.sp()
    if name == "MAXSIZE":
        return name, parse_number(r, UINT32_MAX)
    if name == "DEPTH":
        depth = parse_upper_atom(r)
        if depth == "0":
            return name, "0"
        if depth == "1":
            return name, "1"
        if depth == "INFINITY":
            return name, "infinity"
        r.fail(f"DEPTH {depth} is not 0, 1 or infinity")
    r.fail(f"unknown GETMETADATA option {name}")


def parse_getmetadata(r: Reader, tag: str) -> Metadata:
    """getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
    getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")" """
    r.sp()
    maxsize: int | None = None
    depth: Depth = "0"
    if r.at(b"("):
        for name, value in paren_list(r, _option, empty_ok=False):
            if name == "MAXSIZE" and isinstance(value, int):
                maxsize = value
            elif name == "DEPTH" and isinstance(value, str):
                depth = value
        r.sp()
    mailbox = parse_mailbox(r)
    r.sp()
    entries = _entries(r)
    if len(entries) > MAX_ENTRIES_PER_COMMAND:
        r.fail("too many entries in one command")
    return Metadata(tag, "GETMETADATA", mailbox, tuple(entries), maxsize=maxsize, depth=depth)


def _entry_value(r: Reader) -> tuple[str, bytes | None]:
    """entry-value = entry SP value ; value = nstring / literal8"""
    entry = parse_entry(r)
    r.sp()
    if r.at(b"~{"):
        return entry, parse_literal8(r)
    return entry, parse_nstring(r)


def parse_setmetadata(r: Reader, tag: str) -> Metadata:
    """setmetadata = "SETMETADATA" SP mailbox SP entry-values
    entry-values = "(" entry-value *(SP entry-value) ")" """
    r.sp()
    mailbox = parse_mailbox(r)
    r.sp()
    values = paren_list(r, _entry_value, empty_ok=False)
    if len(values) > MAX_ENTRIES_PER_COMMAND:
        r.fail("too many entries in one command")
    return Metadata(tag, "SETMETADATA", mailbox, values=tuple(values))
