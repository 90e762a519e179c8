"""The grammar of the message commands: FETCH and STORE (RFC 3501 §6.4, RFC 3516
BINARY, RFC 7162 CONDSTORE/QRESYNC modifiers).

One function per ABNF rule, the rule in its docstring (design.md rule 6).
"""

from __future__ import annotations

import re
from typing import Literal

from pushmail.imap.commands import Fetch, FetchAtt, FetchBody, Section, SimpleAtt, StoreFlags
from pushmail.imap.parse_lexer import (
    Reader,
    paren_list,
    parse_astring,
    parse_flag,
    parse_flag_list,
    parse_mod_sequence_value,
    parse_mod_sequence_valzer,
    parse_number,
    parse_nz_number,
    parse_sequence_set,
    parse_upper_atom,
    utf8,
)

_ATT_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_WORD = re.compile(rb"[A-Za-z.]+")

_SIMPLE: dict[str, SimpleAtt] = {
    "FLAGS": "FLAGS",
    "INTERNALDATE": "INTERNALDATE",
    "RFC822.SIZE": "RFC822.SIZE",
    "ENVELOPE": "ENVELOPE",
    "BODY": "BODY",
    "BODYSTRUCTURE": "BODYSTRUCTURE",
    "UID": "UID",
    "MODSEQ": "MODSEQ",
    "RFC822": "RFC822",
    "RFC822.HEADER": "RFC822.HEADER",
    "RFC822.TEXT": "RFC822.TEXT",
    "SAVEDATE": "SAVEDATE",
    "PREVIEW": "PREVIEW",
    "EMAILID": "EMAILID",
    "THREADID": "THREADID",
}
# The fetch modifiers (RFC 7162) that may follow a lone fetch-att: after PREVIEW they
# are not preview modifiers.
_FETCH_MODIFIERS = (b"CHANGEDSINCE", b"VANISHED")

# RFC 3501 §6.4.5: the macros stand for these items, and cannot be combined with others.
_FAST: tuple[FetchAtt, ...] = ("FLAGS", "INTERNALDATE", "RFC822.SIZE")
FETCH_MACROS: dict[str, tuple[FetchAtt, ...]] = {
    "FAST": _FAST,
    "ALL": (*_FAST, "ENVELOPE"),
    "FULL": (*_FAST, "ENVELOPE", "BODY"),
}

SectionText = Literal["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]
_MSGTEXT: dict[str, SectionText] = {
    "HEADER": "HEADER",
    "HEADER.FIELDS": "HEADER.FIELDS",
    "HEADER.FIELDS.NOT": "HEADER.FIELDS.NOT",
    "TEXT": "TEXT",
}


def parse_header_fld_name(r: Reader) -> str:
    """header-fld-name = astring ; upper-cased: field names are case-insensitive"""
    name = utf8(parse_astring(r), "header field name")
    if not name:
        r.fail("empty header field name")
    return name.upper()


def parse_header_list(r: Reader) -> tuple[str, ...]:
    """header-list = "(" header-fld-name *(SP header-fld-name) ")" """
    return tuple(paren_list(r, parse_header_fld_name, empty_ok=False))


def parse_section_part(r: Reader) -> tuple[int, ...]:
    """section-part = nz-number *("." nz-number)"""
    parts = [parse_nz_number(r)]
    while r.at(b".") and r.data[r.pos + 1 : r.pos + 2].isdigit():
        r.pos += 1
        parts.append(parse_nz_number(r))
    return tuple(parts)


def parse_section_msgtext(r: Reader, allow_mime: bool) -> Section:
    """section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
    section-text = section-msgtext / "MIME"   (when ``allow_mime``, after a part)"""
    raw = r.match(_SECTION_WORD)
    word = raw.decode("ascii").upper() if raw else ""
    if word == "MIME" and allow_mime:
        return Section(text="MIME")
    text = _MSGTEXT.get(word)
    if text is None:
        r.fail("expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME")
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        r.sp()
        return Section(text=text, fields=parse_header_list(r))
    return Section(text=text)


def parse_section_spec(r: Reader) -> Section:
    """section-spec = section-msgtext / (section-part ["." section-text])"""
    if not r.data[r.pos : r.pos + 1].isdigit():
        return parse_section_msgtext(r, allow_mime=False)
    part = parse_section_part(r)
    if not r.skip(b"."):
        return Section(part=part)
    sub = parse_section_msgtext(r, allow_mime=True)
    return Section(part=part, text=sub.text, fields=sub.fields)


def parse_section(r: Reader) -> Section:
    """section = "[" [section-spec] "]" """
    r.expect(b"[", '"[" to start a section')
    if r.skip(b"]"):
        return Section()
    section = parse_section_spec(r)
    r.expect(b"]", '"]" to end a section')
    return section


def parse_section_binary(r: Reader) -> Section:
    """section-binary = "[" [section-part] "]"  (RFC 3516)"""
    r.expect(b"[", '"[" to start a binary section')
    if r.skip(b"]"):
        return Section()
    section = Section(part=parse_section_part(r))
    r.expect(b"]", '"]" to end a binary section')
    return section


def parse_partial(r: Reader) -> tuple[int, int]:
    """partial = "<" number "." nz-number ">" ; (offset, length)"""
    r.expect(b"<", '"<"')
    offset = parse_number(r)
    r.expect(b".", '"." in a partial range')
    length = parse_nz_number(r)
    r.expect(b">", '">" to end a partial range')
    return offset, length


def parse_fetch_att(r: Reader) -> FetchAtt:
    """fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" /
    "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] / "BODY" ["STRUCTURE"] / "UID" /
    "BODY" section [partial] / "BODY.PEEK" section [partial] /
    "BINARY" [".PEEK"] section-binary [partial] / "BINARY.SIZE" section-binary /
    "MODSEQ" / "SAVEDATE" /   ; RFC 3516, RFC 7162, RFC 8514
    "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"] /  ; RFC 8970
    "EMAILID" / "THREADID"    ; RFC 8474"""
    raw = r.match(_ATT_NAME)
    name = raw.decode("ascii").upper() if raw else ""
    if name in ("BODY", "BODY.PEEK") and r.at(b"["):
        section = parse_section(r)
        partial = parse_partial(r) if r.at(b"<") else None
        return FetchBody(section=section, partial=partial, peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK"):
        section = parse_section_binary(r)
        partial = parse_partial(r) if r.at(b"<") else None
        return FetchBody(section, partial, peek=name == "BINARY.PEEK", binary=True)
    if name == "BINARY.SIZE":
        return FetchBody(parse_section_binary(r), binary=True, size_only=True)
    if name == "PREVIEW" and r.at(b" (") and not _modifier_follows(r):
        r.sp()
        return parse_preview_mods(r)
    simple = _SIMPLE.get(name)
    if simple is None:
        r.fail(f"unknown fetch attribute {name!r}" if name else "expected a fetch attribute")
    return simple


def _modifier_follows(r: Reader) -> bool:
    """After ``FETCH 1 PREVIEW``, whether `` (`` opens the command's fetch modifiers."""
    saved = r.pos
    r.pos += 2
    try:
        return any(r.at_word(word) for word in _FETCH_MODIFIERS)
    finally:
        r.pos = saved


def parse_preview_mods(r: Reader) -> FetchAtt:
    """ "(" preview-mod *(SP preview-mod) ")"  ; after "PREVIEW" SP (RFC 8970)
    preview-mod = "LAZY" """

    def one(rr: Reader) -> str:
        name = parse_upper_atom(rr)
        if name != "LAZY":
            rr.fail(f"unknown PREVIEW modifier {name}")
        return name

    paren_list(r, one, empty_ok=False)
    return "PREVIEW (LAZY)"


def parse_fetch_items(r: Reader) -> tuple[FetchAtt, ...]:
    """ "ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")" """
    for macro, items in FETCH_MACROS.items():
        if r.at_word(macro.encode()):
            r.pos += len(macro)
            return items
    if r.at(b"("):
        return tuple(paren_list(r, parse_fetch_att, empty_ok=False))
    return (parse_fetch_att(r),)


def parse_fetch_modifiers(r: Reader) -> tuple[int | None, bool]:
    """fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
    fetch-modifier = "CHANGEDSINCE" SP mod-sequence-value / "VANISHED"  ; RFC 7162"""
    changedsince: int | None = None
    vanished = False

    def one(rr: Reader) -> None:
        nonlocal changedsince, vanished
        name = parse_upper_atom(rr)
        if name == "CHANGEDSINCE" and changedsince is None:
            rr.sp()
            changedsince = parse_mod_sequence_value(rr)
        elif name == "VANISHED" and not vanished:
            vanished = True
        else:
            rr.fail(f"unknown or repeated fetch modifier {name}")

    paren_list(r, one, empty_ok=False)
    return changedsince, vanished


def parse_fetch(r: Reader, tag: str, uid: bool) -> Fetch:
    """fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
    "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]"""
    r.sp()
    seqset = parse_sequence_set(r)
    r.sp()
    items = parse_fetch_items(r)
    changedsince: int | None = None
    vanished = False
    if r.skip(b" "):
        changedsince, vanished = parse_fetch_modifiers(r)
    if vanished and not (uid and changedsince is not None):
        # RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE.
        r.fail("VANISHED needs UID FETCH and CHANGEDSINCE")
    return Fetch(tag, seqset, items, uid=uid, changedsince=changedsince, vanished=vanished)


_STORE_MODES: dict[str, Literal["set", "add", "remove"]] = {
    "FLAGS": "set",
    "+FLAGS": "add",
    "-FLAGS": "remove",
}
_STORE_ATT = re.compile(rb"[+-]?[A-Za-z]+(\.[A-Za-z]+)?")


def parse_store_att_flags(
    r: Reader,
) -> tuple[Literal["set", "add", "remove"], bool, tuple[str, ...]]:
    """store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))"""
    raw = r.match(_STORE_ATT)
    word = raw.decode("ascii").upper() if raw else ""
    silent = word.endswith(".SILENT")
    mode = _STORE_MODES.get(word.removesuffix(".SILENT"))
    if mode is None:
        r.fail("expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT)")
    r.sp()
    if r.at(b"("):
        return mode, silent, parse_flag_list(r)
    flags = [parse_flag(r)]
    while r.skip(b" "):
        flags.append(parse_flag(r))
    return mode, silent, tuple(flags)


def parse_store_modifiers(r: Reader) -> int:
    """store-modifiers = SP "(" store-modifier *(SP store-modifier) ")"
    store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer   ; RFC 7162"""
    found: list[int] = []

    def one(rr: Reader) -> None:
        if parse_upper_atom(rr) != "UNCHANGEDSINCE" or found:
            rr.fail("unknown or repeated store modifier")
        rr.sp()
        found.append(parse_mod_sequence_valzer(rr))

    paren_list(r, one, empty_ok=False)
    return found[0]


def parse_store(r: Reader, tag: str, uid: bool) -> StoreFlags:
    """store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags"""
    r.sp()
    seqset = parse_sequence_set(r)
    r.sp()
    unchangedsince = None
    if r.at(b"("):
        unchangedsince = parse_store_modifiers(r)
        r.sp()
    mode, silent, flags = parse_store_att_flags(r)
    return StoreFlags(
        tag, seqset, mode, flags, silent=silent, uid=uid, unchangedsince=unchangedsince
    )
