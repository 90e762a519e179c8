"""The grammar of SEARCH (RFC 3501 §6.4.4, ESEARCH RFC 4731, CONDSTORE RFC 7162,
SEARCHRES RFC 5182).

Search strings are decoded with the CHARSET the client named, so the session only
ever compares Unicode text. The nesting depth of NOT / OR / parentheses is capped:
a peer must not be able to exhaust the interpreter's stack with ``((((...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pushmail.imap.commands import (
    Search,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNew,
    SearchNot,
    SearchObjectId,
    SearchOld,
    SearchOr,
    SearchSet,
    SearchSize,
    SearchText,
    SearchWithin,
)
from pushmail.imap.errors import ProtocolError
from pushmail.imap.parse_lexer import (
    Reader,
    paren_list,
    parse_astring,
    parse_date,
    parse_flag_keyword,
    parse_mod_sequence_valzer,
    parse_number64,
    parse_quoted,
    parse_sequence_set,
    parse_upper_atom,
)

MAX_DEPTH = 64

# CHARSET names we decode, mapped to Python codecs. Anything else is answered with
# [BADCHARSET] (RFC 3501 §6.4.4), rather than letting an arbitrary codec name reach
# ``bytes.decode`` (some "codecs" are transforms, not text encodings).
CHARSETS: dict[str, str] = {
    "US-ASCII": "utf-8",  # 8-bit in a US-ASCII search is tolerated as UTF-8
    "UTF-8": "utf-8",
    "ISO-8859-1": "latin-1",
    "ISO-8859-2": "iso8859-2",
    "ISO-8859-15": "iso8859-15",
    "WINDOWS-1252": "cp1252",
    "KOI8-R": "koi8-r",
    "ISO-2022-JP": "iso2022-jp",
    "SHIFT_JIS": "shift_jis",
    "EUC-JP": "euc-jp",
    "GB2312": "gb2312",
    "BIG5": "big5",
}

_KEY_WORD = re.compile(rb"[A-Za-z]+")
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}(?![A-Za-z0-9_-])")

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "RECENT": ("\\Recent", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = frozenset({"BCC", "CC", "FROM", "SUBJECT", "TO"})
_DATE_KEYS: dict[str, tuple[Literal["BEFORE", "ON", "SINCE"], bool, bool]] = {
    "BEFORE": ("BEFORE", False, False),
    "ON": ("ON", False, False),
    "SINCE": ("SINCE", False, False),
    "SENTBEFORE": ("BEFORE", True, False),
    "SENTON": ("ON", True, False),
    "SENTSINCE": ("SINCE", True, False),
    "SAVEDBEFORE": ("BEFORE", False, True),  # RFC 8514
    "SAVEDON": ("ON", False, True),
    "SAVEDSINCE": ("SINCE", False, True),
}
SEARCH_RETURN_OPTS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


class _Ctx:
    """What the key parsers need besides the reader: the charset and the depth."""

    __slots__ = ("codec", "depth")

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.depth = 0


def _text(r: Reader, ctx: _Ctx) -> str:
    raw = parse_astring(r)
    try:
        return raw.decode(ctx.codec)
    except UnicodeDecodeError:
        raise ProtocolError("search string does not match its CHARSET", "BADCHARSET") from None


def parse_search_modsequence(r: Reader) -> SearchModseq:
    """search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
    search-modseq-ext = SP entry-name SP entry-type-req ; entry-name = quoted
    entry-type-req = "priv" / "shared" / "all"       ; RFC 7162, accepted and ignored"""
    r.sp()
    if r.at(b'"'):
        parse_quoted(r)
        r.sp()
        if parse_upper_atom(r) not in ("PRIV", "SHARED", "ALL"):
            r.fail("expected priv, shared or all")
        r.sp()
    return SearchModseq(parse_mod_sequence_valzer(r))


def _nested(r: Reader, ctx: _Ctx, parse: Callable[[Reader, _Ctx], SearchKey]) -> SearchKey:
    ctx.depth += 1
    if ctx.depth > MAX_DEPTH:
        r.fail("search keys nested too deeply")
    try:
        return parse(r, ctx)
    finally:
        ctx.depth -= 1


def _parse_and(r: Reader, ctx: _Ctx) -> SearchKey:
    return SearchAnd(tuple(paren_list(r, lambda rr: parse_search_key(rr, ctx), False)))


def _parse_not(r: Reader, ctx: _Ctx) -> SearchKey:
    r.sp()
    return SearchNot(parse_search_key(r, ctx))


def _parse_or(r: Reader, ctx: _Ctx) -> SearchKey:
    r.sp()
    left = parse_search_key(r, ctx)
    r.sp()
    return SearchOr(left, parse_search_key(r, ctx))


def _parse_word_key(r: Reader, ctx: _Ctx, word: str) -> SearchKey:
    """The keys introduced by a keyword, with their arguments."""
    if word in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[word]
        return SearchFlag(flag, present)
    if word in _HEADER_KEYS:
        r.sp()
        return SearchHeader(word, _text(r, ctx))
    if word in _DATE_KEYS:
        op, sent, saved = _DATE_KEYS[word]
        r.sp()
        return SearchDate(op, parse_date(r), sent=sent, saved=saved)
    if word == "SAVEDATESUPPORTED":  # RFC 8514: every mailbox here keeps save dates
        return SearchAll()
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return SearchFlag(parse_flag_keyword(r), word == "KEYWORD")
    if word in ("OLDER", "YOUNGER"):  # RFC 5032: SP nz-number
        r.sp()
        n = parse_number64(r)
        if n == 0:
            r.fail(f"{word} needs a positive number")
        return SearchWithin(word == "OLDER", n)
    if word in ("LARGER", "SMALLER"):
        r.sp()
        return SearchSize(word == "LARGER", parse_number64(r))
    return _parse_word_key2(r, ctx, word)


def _parse_word_key2(r: Reader, ctx: _Ctx, word: str) -> SearchKey:
    if word == "ALL":
        return SearchAll()
    if word == "NEW":
        return SearchNew()
    if word == "OLD":
        return SearchOld()
    if word in ("BODY", "TEXT"):
        r.sp()
        return SearchText("BODY" if word == "BODY" else "TEXT", _text(r, ctx))
    if word == "HEADER":
        r.sp()
        name = _text(r, ctx).upper()
        r.sp()
        return SearchHeader(name, _text(r, ctx))
    if word == "UID":
        r.sp()
        return SearchSet(parse_sequence_set(r), uid=True)
    if word == "MODSEQ":
        return parse_search_modsequence(r)
    if word in ("EMAILID", "THREADID"):
        r.sp()
        return SearchObjectId("EMAILID" if word == "EMAILID" else "THREADID", parse_objectid(r))
    if word == "NOT":
        return _nested(r, ctx, _parse_not)
    if word == "OR":
        return _nested(r, ctx, _parse_or)
    r.fail(f"unknown search key {word}")


def parse_objectid(r: Reader) -> str:
    """objectid = 1*255(ALPHA / DIGIT / "_" / "-")  ; RFC 8474"""
    raw = r.match(_OBJECTID)
    if raw is None:
        r.fail("expected an objectid")
    return raw.decode("ascii")


def parse_search_key(r: Reader, ctx: _Ctx) -> SearchKey:
    """search-key = "ALL" / "ANSWERED" / "BCC" SP astring / "BEFORE" SP date /
    "BODY" SP astring / "CC" SP astring / "DELETED" / "FLAGGED" / "FROM" SP astring /
    "KEYWORD" SP flag-keyword / "NEW" / "OLD" / "ON" SP date / "RECENT" / "SEEN" /
    "SINCE" SP date / "SUBJECT" SP astring / "TEXT" SP astring / "TO" SP astring /
    "UNANSWERED" / "UNDELETED" / "UNFLAGGED" / "UNKEYWORD" SP flag-keyword /
    "UNSEEN" / "DRAFT" / "HEADER" SP header-fld-name SP astring /
    "LARGER" SP number64 / "NOT" SP search-key / "OR" SP search-key SP search-key /
    "SENTBEFORE" SP date / "SENTON" SP date / "SENTSINCE" SP date /
    "SMALLER" SP number64 / "UID" SP sequence-set / "UNDRAFT" / sequence-set /
    "(" search-key *(SP search-key) ")" / search-modsequence /
    "EMAILID" SP objectid / "THREADID" SP objectid /  ; RFC 8474
    "SAVEDBEFORE" SP date / "SAVEDON" SP date / "SAVEDSINCE" SP date /
    "SAVEDATESUPPORTED" /     ; RFC 8514
    "OLDER" SP nz-number / "YOUNGER" SP nz-number  ; RFC 5032"""
    c = r.peek()
    if c == ord("("):
        return _nested(r, ctx, _parse_and)
    if c == ord("$") or c == ord("*") or ord("0") <= c <= ord("9"):
        return SearchSet(parse_sequence_set(r))
    raw = r.match(_KEY_WORD)
    if raw is None:
        r.fail("expected a search key")
    return _parse_word_key(r, ctx, raw.decode("ascii").upper())


def parse_search_return_opts(r: Reader) -> tuple[str, ...]:
    """search-return-opts = "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
    search-return-opt = "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE"      ; RFC 4731, 5182"""
    r.pos += len("RETURN")
    r.sp()

    def one(rr: Reader) -> str:
        opt = parse_upper_atom(rr)
        if opt not in SEARCH_RETURN_OPTS:
            rr.fail(f"unknown search return option {opt}")
        return opt

    return tuple(paren_list(r, one, empty_ok=True))


def parse_charset(r: Reader) -> str:
    """charset = atom / quoted ; upper-cased, and one we can decode"""
    raw = parse_quoted(r) if r.at(b'"') else parse_upper_atom(r).encode()
    name = raw.decode("ascii", "replace").upper()
    if name not in CHARSETS:
        raise ProtocolError(f"unsupported charset {name!r}", "BADCHARSET")
    return name


def parse_search(r: Reader, tag: str, uid: bool) -> Search:
    """search = "SEARCH" [search-return-opts] SP search-program
    search-program = ["CHARSET" SP charset SP] search-key *(SP search-key)"""
    r.sp()
    returns: tuple[str, ...] | None = None
    if r.at_word(b"RETURN"):
        returns = parse_search_return_opts(r)
        r.sp()
    charset: str | None = None
    if r.at_word(b"CHARSET"):
        r.pos += len("CHARSET")
        r.sp()
        charset = parse_charset(r)
        r.sp()
    ctx = _Ctx(CHARSETS[charset or "UTF-8"])
    keys = [parse_search_key(r, ctx)]
    while r.skip(b" "):
        keys.append(parse_search_key(r, ctx))
    key = keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
    return Search(tag, key, uid=uid, charset=charset, returns=returns)
