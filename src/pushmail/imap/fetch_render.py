"""The data of one ``* n FETCH (...)`` response (RFC 3501 §7.4.2, RFC 3516, RFC 7162).

``render_fetch`` turns the requested items into the parenthesised list, in the order
asked. Response names follow §7.4.2: ``BODY.PEEK[...]`` answers as ``BODY[...]``, a
partial fetch as ``BODY[...]<offset>``, RFC822.* keep their names. ENVELOPE,
BODYSTRUCTURE and BODY come from the pre-computed cache; the raw message is read only
when an item needs it, and at most once. A section that does not exist is NIL.

The session decides about ``\\Seen`` and about adding UID for UID FETCH.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pushmail.imap.commands import FetchAtt, FetchBody, Section
from pushmail.imap.encoder import NIL, astring, date_time, flag_list, literal, nstring, paren
from pushmail.imap.errors import CommandFailed
from pushmail.mime.preview import build_preview
from pushmail.mime.rawparts import RawPart, parse_message
from pushmail.mime.sections import (
    UnknownCteError,
    apply_partial,
    decode_binary,
    extract_section,
)
from pushmail.store.interfaces import MessageCache


@dataclass(slots=True)
class FetchContext:
    """One message as FETCH sees it. ``flags`` already include ``\\Recent`` where the
    session says so. ``get_raw`` / ``get_cache`` are called lazily, at most once."""

    seq: int
    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    modseq: int
    get_raw: Callable[[], bytes]
    get_cache: Callable[[], MessageCache]
    savedate: datetime | None = None  # RFC 8514; NIL when the store does not keep it
    # The stored PREVIEW when the caller read it for many messages at once (saves a
    # cache read per message); None: read it from the cache.
    get_preview: Callable[[], str | None] | None = None
    emailid: str | None = None  # RFC 8474, read in one query for all messages
    _raw: bytes | None = field(default=None, init=False, repr=False)
    _tree: RawPart | None = field(default=None, init=False, repr=False)
    _cache: MessageCache | None = field(default=None, init=False, repr=False)

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.get_raw()
        return self._raw

    def tree(self) -> RawPart:
        if self._tree is None:
            self._tree = parse_message(self.raw())
        return self._tree

    def cache(self) -> MessageCache:
        if self._cache is None:
            self._cache = self.get_cache()
        return self._cache

    def stored_preview(self) -> str | None:
        return self.cache().preview if self.get_preview is None else self.get_preview()


def render_fetch(items: Sequence[FetchAtt], ctx: FetchContext) -> bytes:
    """``(NAME value NAME value ...)`` for ``items``; the bytes after ``* n FETCH ``.

    Raises ``CommandFailed`` with code UNKNOWN-CTE for BINARY[] of a part whose
    transfer encoding cannot be undone (RFC 3516 §4.3).
    """
    if len(items) == 1:  # the common FETCH of one item, without a generator
        return b"(" + _render_one(items[0], ctx) + b")"
    return paren(_render_one(item, ctx) for item in items)


def _render_one(item: FetchAtt, ctx: FetchContext) -> bytes:
    if isinstance(item, FetchBody):
        return _render_body(item, ctx)
    handler = _SIMPLE[item]
    return _RESPONSE_NAME.get(item, item).encode("ascii") + b" " + handler(ctx)


def char8_literal(data: bytes) -> bytes:
    """A literal for message text outside BINARY[]: RFC 3501/9051 literals are CHAR8
    (``%x01-ff``), so a NUL in stored content goes out as 0x80, exactly as Dovecot
    2.3 does (checked by tests/e2e/test_mime_dovecot_diff.py). One octet for one
    keeps every size and partial offset what BODYSTRUCTURE and RFC822.SIZE say;
    only BINARY[] sends the NUL, in a literal8."""
    return literal(data.replace(b"\x00", b"\x80"))


def _rfc822_header(ctx: FetchContext) -> bytes:
    return char8_literal(ctx.tree().header_bytes(ctx.raw()))


def _rfc822_text(ctx: FetchContext) -> bytes:
    return char8_literal(ctx.tree().body_bytes(ctx.raw()))


def _savedate(ctx: FetchContext) -> bytes:
    return NIL if ctx.savedate is None else date_time(ctx.savedate)


def _preview(ctx: FetchContext) -> bytes:
    """The stored preview; one not stored yet (a text kept before previews were,
    until the start-up refresh) is made from the text now (RFC 8970)."""
    text = ctx.stored_preview()
    if text is None:
        text = build_preview(ctx.tree(), ctx.raw())
    return nstring(text.encode("utf-8"))


def _preview_lazy(ctx: FetchContext) -> bytes:
    """``PREVIEW (LAZY)``: NIL rather than reading the text (RFC 8970 LAZY)."""
    text = ctx.stored_preview()
    return NIL if text is None else nstring(text.encode("utf-8"))


def _emailid(ctx: FetchContext) -> bytes:
    if ctx.emailid is None:  # the caller always sets it; a gap would be a bug
        raise CommandFailed("EMAILID not available", "SERVERBUG")
    return b"(" + ctx.emailid.encode("ascii") + b")"


# Items answered under another name than the one asked for.
_RESPONSE_NAME = {"PREVIEW (LAZY)": "PREVIEW"}

_SIMPLE: dict[str, Callable[[FetchContext], bytes]] = {
    "UID": lambda c: b"%d" % c.uid,
    "FLAGS": lambda c: flag_list(c.flags),
    "INTERNALDATE": lambda c: date_time(c.internaldate),
    "RFC822.SIZE": lambda c: b"%d" % c.size,
    "MODSEQ": lambda c: b"(%d)" % c.modseq,
    "ENVELOPE": lambda c: c.cache().envelope,
    "BODYSTRUCTURE": lambda c: c.cache().bodystructure,
    "BODY": lambda c: c.cache().body,
    "RFC822": lambda c: char8_literal(c.raw()),
    "RFC822.HEADER": _rfc822_header,
    "RFC822.TEXT": _rfc822_text,
    "SAVEDATE": _savedate,
    "PREVIEW": _preview,
    "PREVIEW (LAZY)": _preview_lazy,
    "EMAILID": _emailid,
    # RFC 8474 §5.2: NIL from a server that does not group messages into threads;
    # a THREADID waits for the thread data of THREAD=REFERENCES (issue 18).
    "THREADID": lambda c: NIL,
}


def section_spec(section: Section) -> bytes:
    """The text inside the brackets: ``1.2.HEADER.FIELDS (FROM TO)``."""
    parts = [b"%d" % n for n in section.part]
    if section.text is not None:
        parts.append(section.text.encode("ascii"))
    spec = b".".join(parts)
    if section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        spec += b" " + paren(astring(f) for f in section.fields)
    return spec


def _render_body(item: FetchBody, ctx: FetchContext) -> bytes:
    spec = section_spec(item.section)
    if item.binary:
        name = (b"BINARY.SIZE[" if item.size_only else b"BINARY[") + spec + b"]"
        try:
            data = decode_binary(ctx.raw(), item.section, ctx.tree())
        except UnknownCteError as exc:
            raise CommandFailed(
                f"unknown content-transfer-encoding {str(exc)[:40]!r}", "UNKNOWN-CTE"
            ) from None
        if item.size_only:
            return name + b" " + (b"0" if data is None else b"%d" % len(data))
    else:
        name = b"BODY[" + spec + b"]"
        data = extract_section(ctx.raw(), item.section, ctx.tree())
    if item.partial is not None:
        name += b"<%d>" % item.partial[0]
    if data is None:
        return name + b" " + NIL
    data = apply_partial(data, item.partial)
    if item.binary and b"\x00" in data:
        return name + b" ~" + literal(data)  # literal8 (RFC 3516 §4.2)
    if item.binary:
        return name + b" " + literal(data)
    return name + b" " + char8_literal(data)
