"""APPEND with MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469), and the QUOTA
commands (RFC 9208): one function per ABNF rule, as in the other ``parse_*``."""

from __future__ import annotations

from pushmail.imap.commands import Append, AppendMessage, CatPart, CatUrl, GetQuota
from pushmail.imap.parse_lexer import (
    UINT63_MAX,
    Reader,
    paren_list,
    parse_astring,
    parse_date_time,
    parse_flag_list,
    parse_literal,
    parse_literal8,
    parse_mailbox,
    parse_number,
    parse_upper_atom,
)

# RFC 9208 §5: resource names this server knows; SETQUOTA is refused anyway, but
# its arguments are still read by the grammar.
QUOTA_RESOURCES = ("STORAGE", "MESSAGE")


def parse_append_data(r: Reader) -> bytes:
    """append-data = literal / literal8 / "UTF8" SP "(" literal8 ")"   ; RFC 3516, 6855"""
    if r.at(b"~{"):
        return parse_literal8(r)
    if r.at_word(b"UTF8"):
        r.pos += 4
        r.sp()
        r.expect(b"(", '"(" after UTF8')
        data = parse_literal8(r)
        r.expect(b")", '")" after the UTF8 message')
        return data
    return parse_literal(r)


def parse_cat_part(r: Reader) -> CatPart:
    """cat-part = text-literal / url ; text-literal = "TEXT" SP literal ;
    url = "URL" SP astring   (RFC 4469 §5; literal8 too, as RFC 3516 allows)"""
    if r.at_word(b"TEXT"):
        r.pos += 4
        r.sp()
        return parse_literal8(r) if r.at(b"~{") else parse_literal(r)
    if r.at_word(b"URL"):
        r.pos += 3
        r.sp()
        return CatUrl(parse_astring(r).decode("utf-8", "replace"))
    r.fail("expected TEXT or URL")


def parse_append_message(r: Reader) -> AppendMessage:
    """append-message = append-opts SP append-data   (RFC 3502)
    append-opts = [flag-list SP] [date-time SP]
    append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"   (RFC 4469)"""
    flags: tuple[str, ...] = ()
    if r.at(b"("):
        flags = parse_flag_list(r)
        r.sp()
    internaldate = None
    if r.at(b'"'):
        internaldate = parse_date_time(r)
        r.sp()
    if r.at_word(b"CATENATE"):
        r.pos += 8
        r.sp()
        parts = tuple(paren_list(r, parse_cat_part, empty_ok=False))
        return AppendMessage(b"", flags, internaldate, parts)
    return AppendMessage(parse_append_data(r), flags, internaldate)


def parse_append(r: Reader, tag: str) -> Append:
    """append = "APPEND" SP mailbox 1*(SP append-message)   (RFC 3502 §6)"""
    r.sp()
    mailbox = parse_mailbox(r)
    r.sp()
    first = parse_append_message(r)
    more: list[AppendMessage] = []
    while r.skip(b" "):
        more.append(parse_append_message(r))
    return Append(
        tag, mailbox, first.message, first.flags, first.internaldate, first.parts, tuple(more)
    )


def parse_getquota(r: Reader, tag: str) -> GetQuota:
    """getquota = "GETQUOTA" SP quota-root-name   (RFC 9208 §4)"""
    r.sp()
    return GetQuota(tag, "GETQUOTA", parse_astring(r).decode("utf-8", "replace"))


def parse_getquotaroot(r: Reader, tag: str) -> GetQuota:
    """getquotaroot = "GETQUOTAROOT" SP mailbox"""
    r.sp()
    return GetQuota(tag, "GETQUOTAROOT", parse_mailbox(r))


def _setquota_resource(r: Reader) -> tuple[str, int]:
    """setquota-resource = resource-name SP resource-limit"""
    name = parse_upper_atom(r)
    r.sp()
    return name, parse_number(r, UINT63_MAX)


def parse_setquota(r: Reader, tag: str) -> GetQuota:
    """setquota = "SETQUOTA" SP quota-root-name SP setquota-list
    setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")" """
    r.sp()
    root = parse_astring(r).decode("utf-8", "replace")
    r.sp()
    limits = tuple(paren_list(r, _setquota_resource, empty_ok=True))
    return GetQuota(tag, "SETQUOTA", root, limits)
