"""The lexical rules of the IMAP command grammar (RFC 3501 §9, RFC 9051 §9).

One function per ABNF rule, named after it (design.md rule 6). Each takes a ``Reader``
positioned at the rule and leaves it just after; anything that does not fit raises
``ProtocolError`` with the byte offset, and nothing else escapes (design.md rule 7).

Only what several command families share lives here: atoms, strings, literals,
numbers, flags, mailbox names, sequence sets and dates. The command rules are in
``parse_mailbox``, ``parse_fetch``, ``parse_search`` and ``parser``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import NoReturn, TypeVar

from pushmail.imap.errors import ProtocolError
from pushmail.imap.mutf7 import InvalidName, decode_mutf7
from pushmail.imap.types import DateTime, SeqRange, SequenceSet, canonical_flag

T = TypeVar("T")

UINT32_MAX = 2**32 - 1
UINT63_MAX = 2**63 - 1

# ATOM-CHAR = <any CHAR except atom-specials>; atom-specials = "(" / ")" / "{" / SP /
# CTL / list-wildcards / quoted-specials / resp-specials.
_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f-\xff]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials
_ASTRING = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f-\xff]+')
# tag = 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb'[^(){ %*"\\+\x00-\x1f\x7f-\xff]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials
_LIST_CHARS = re.compile(rb'[^(){ "\\\x00-\x1f\x7f-\xff]+')
_DIGITS = re.compile(rb"[0-9]+")
# A number longer than this cannot be in range for any rule, and int() on a huge
# digit string is slow (and limited), so the lexer refuses it first.
_MAX_DIGITS = 20

_MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTHS = {m.encode().upper(): i + 1 for i, m in enumerate(_MONTH_NAMES)}


class Reader:
    """A cursor over one complete command; the parse functions advance it."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def fail(self, what: str) -> NoReturn:
        raise ProtocolError(f"{what} (at byte {self.pos})")

    def peek(self) -> int:
        """The next byte, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def at(self, token: bytes) -> bool:
        return self.data.startswith(token, self.pos)

    def at_word(self, word: bytes) -> bool:
        """Whether ``word`` (upper case) comes next, in any case, as a whole token."""
        end = self.pos + len(word)
        if self.data[self.pos : end].upper() != word:
            return False
        return end >= len(self.data) or self.data[end] in b" )\r"

    def skip(self, token: bytes) -> bool:
        """Consume ``token`` (exact case) if it comes next."""
        if self.data.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes, what: str) -> None:
        if not self.skip(token):
            self.fail(f"expected {what}")

    def sp(self) -> None:
        """SP = %x20: exactly one space separates tokens."""
        self.expect(b" ", "a space")

    def match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        m = pattern.match(self.data, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def end(self) -> None:
        """The command must end here with CRLF and nothing after it."""
        if self.data[self.pos :] != b"\r\n":
            self.fail("unexpected data at the end of the command")
        self.pos += 2


def utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None


def parse_tag_token(r: Reader) -> str:
    """tag = 1*<any ASTRING-CHAR except "+">"""
    raw = r.match(_TAG)
    if raw is None:
        r.fail("expected a tag")
    return raw.decode("ascii")


def parse_tag(data: bytes | bytearray) -> str | None:
    """The tag at the start of ``data`` if it is a valid one, for error replies.

    It must be followed by a space, CR or the end of the data, so that the tag of a
    line like ``a(b NOOP`` is not mistaken for ``a``."""
    m = _TAG.match(data)
    if m is None:
        return None
    rest = data[m.end() : m.end() + 1]
    return m.group().decode("ascii") if rest in (b"", b" ", b"\r") else None


def parse_atom(r: Reader) -> str:
    """atom = 1*ATOM-CHAR"""
    raw = r.match(_ATOM)
    if raw is None:
        r.fail("expected an atom")
    return raw.decode("ascii")


def parse_number(r: Reader, limit: int = UINT32_MAX) -> int:
    """number = 1*DIGIT ; unsigned 32-bit integer (number64 when ``limit`` says so)"""
    raw = r.match(_DIGITS)
    if raw is None:
        r.fail("expected a number")
    if len(raw) > _MAX_DIGITS or int(raw) > limit:
        r.fail("number out of range")
    return int(raw)


def parse_nz_number(r: Reader, limit: int = UINT32_MAX) -> int:
    """nz-number = digit-nz *DIGIT ; non-zero unsigned 32-bit integer"""
    if r.peek() == ord("0"):
        r.fail("expected a non-zero number")
    return parse_number(r, limit)


def parse_number64(r: Reader) -> int:
    """number64 = 1*DIGIT ; unsigned 63-bit integer (RFC 9051)"""
    return parse_number(r, UINT63_MAX)


def parse_mod_sequence_value(r: Reader) -> int:
    """mod-sequence-value = 1*DIGIT ; positive unsigned 63-bit integer (RFC 7162)"""
    value = parse_number(r, UINT63_MAX)
    if value == 0:
        r.fail("mod-sequence value must be positive")
    return value


def parse_mod_sequence_valzer(r: Reader) -> int:
    """mod-sequence-valzer = "0" / mod-sequence-value (RFC 7162)"""
    return parse_number(r, UINT63_MAX)


def parse_quoted(r: Reader) -> bytes:
    """quoted = DQUOTE *QUOTED-CHAR DQUOTE
    QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\\" quoted-specials
                  / UTF8-2 / UTF8-3 / UTF8-4   ; UTF-8 per RFC 9051 / RFC 6855"""
    r.expect(b'"', "a quoted string")
    data = r.data
    out = bytearray()
    while True:
        i = r.pos
        if i >= len(data):
            r.fail("unterminated quoted string")
        c = data[i]
        if c == 0x22:  # DQUOTE
            r.pos = i + 1
            return bytes(out)
        if c == 0x5C:  # backslash: only quoted-specials may follow
            if i + 1 >= len(data) or data[i + 1] not in b'"\\':
                r.fail("bad escape in quoted string")
            out.append(data[i + 1])
            r.pos = i + 2
            continue
        if c in (0, 10, 13):
            r.fail("CR, LF or NUL in quoted string")
        out.append(c)
        r.pos = i + 1


def _literal_body(r: Reader, binary: bool) -> bytes:
    """The part after "{" or "~{": number ["+"] "}" CRLF *CHAR8."""
    size = parse_number(r)
    r.skip(b"+")  # LITERAL+ / LITERAL- (RFC 7888): same bytes once the command is whole
    r.expect(b"}\r\n", '"}" and CRLF after a literal size')
    start = r.pos
    end = start + size
    if end > len(r.data):
        r.fail("literal is shorter than its announced size")
    r.pos = end
    body = r.data[start:end]
    if not binary and 0 in body:
        r.fail("NUL in a literal (only literal8 may carry it)")
    return body


def parse_literal(r: Reader) -> bytes:
    """literal = "{" number ["+"] "}" CRLF *CHAR8 ; CHAR8 = %x01-ff (no NUL)"""
    r.expect(b"{", "a literal")
    return _literal_body(r, binary=False)


def parse_literal8(r: Reader) -> bytes:
    """literal8 = "~{" number ["+"] "}" CRLF *OCTET ; RFC 3516, may hold NUL"""
    r.expect(b"~{", "a literal8")
    return _literal_body(r, binary=True)


def parse_string(r: Reader) -> bytes:
    """string = quoted / literal"""
    c = r.peek()
    if c == ord('"'):
        return parse_quoted(r)
    if c == ord("{"):
        return parse_literal(r)
    r.fail("expected a string")


def parse_astring(r: Reader) -> bytes:
    """astring = 1*ASTRING-CHAR / string"""
    c = r.peek()
    if c in (ord('"'), ord("{")):
        return parse_string(r)
    raw = r.match(_ASTRING)
    if raw is None:
        r.fail("expected an atom or a string")
    return raw


def parse_nil(r: Reader) -> bool:
    """nil = "NIL" ; consumed and True if it comes next, in any case"""
    if r.at_word(b"NIL"):
        r.pos += 3
        return True
    return False


def parse_nstring(r: Reader) -> bytes | None:
    """nstring = string / nil"""
    return None if parse_nil(r) else parse_string(r)


def _mailbox_name(raw: bytes) -> str:
    """Modified UTF-7 for 7-bit names; 8-bit names are taken as UTF-8 (RFC 9051)."""
    if raw.isascii():
        try:
            name = decode_mutf7(raw.decode("ascii"))
        except ProtocolError:  # well-formed, but names nothing: NO, not BAD
            return InvalidName(raw.decode("ascii"))
    else:
        name = utf8(raw, "mailbox name")
    return "INBOX" if name.upper() == "INBOX" else name


def parse_mailbox(r: Reader) -> str:
    """mailbox = "INBOX" / astring ; INBOX is case-insensitive"""
    return _mailbox_name(parse_astring(r))


def parse_list_mailbox(r: Reader) -> str:
    """list-mailbox = 1*list-char / string"""
    c = r.peek()
    if c in (ord('"'), ord("{")):
        return _mailbox_name(parse_string(r))
    raw = r.match(_LIST_CHARS)
    if raw is None:
        r.fail("expected a mailbox pattern")
    return _mailbox_name(raw)


def parse_flag_keyword(r: Reader) -> str:
    """flag-keyword = atom"""
    return parse_atom(r)


def parse_flag(r: Reader) -> str:
    """flag = "\\Answered" / "\\Flagged" / "\\Deleted" / "\\Seen" / "\\Draft" /
    flag-keyword / flag-extension ; flag-extension = "\\" atom"""
    if r.skip(b"\\"):
        return canonical_flag("\\" + parse_atom(r))
    return parse_flag_keyword(r)


def parse_flag_list(r: Reader) -> tuple[str, ...]:
    """flag-list = "(" [flag *(SP flag)] ")" """
    return tuple(paren_list(r, parse_flag, empty_ok=True))


def parse_seq_number(r: Reader) -> int | None:
    """seq-number = nz-number / "*" ; None stands for "*" """
    if r.skip(b"*"):
        return None
    return parse_nz_number(r)


def parse_seq_range(r: Reader) -> SeqRange:
    """seq-range = seq-number ":" seq-number ; a lone seq-number is a range of one"""
    start = parse_seq_number(r)
    end = parse_seq_number(r) if r.skip(b":") else start
    return SeqRange(start, end)


def parse_sequence_set(r: Reader) -> SequenceSet:
    """sequence-set = (seq-number / seq-range) ["," sequence-set] / "$"  ; $: RFC 5182"""
    if r.skip(b"$"):
        return SequenceSet((), saved=True)
    ranges = [parse_seq_range(r)]
    while r.skip(b","):
        ranges.append(parse_seq_range(r))
    return SequenceSet(tuple(ranges))


def parse_date_month(r: Reader) -> int:
    """date-month = "Jan" / "Feb" / ... / "Dec" ; any case"""
    month = _MONTHS.get(r.data[r.pos : r.pos + 3].upper())
    if month is None:
        r.fail("expected a month name")
    r.pos += 3
    return month


def _fixed_digits(r: Reader, count: int, what: str) -> int:
    raw = r.data[r.pos : r.pos + count]
    if len(raw) != count or not raw.isdigit():
        r.fail(f"expected {what}")
    r.pos += count
    return int(raw)


def parse_date_text(r: Reader) -> str:
    """date-text = date-day "-" date-month "-" date-year ; date-day = 1*2DIGIT"""
    raw = r.match(_DIGITS)
    if raw is None or len(raw) > 2:
        r.fail("expected a day of the month")
    r.expect(b"-", '"-" in a date')
    month = parse_date_month(r)
    r.expect(b"-", '"-" in a date')
    year = _fixed_digits(r, 4, "a four-digit year")
    try:
        return date(year, month, int(raw)).isoformat()
    except ValueError:
        r.fail("no such date")


def parse_date(r: Reader) -> str:
    """date = date-text / DQUOTE date-text DQUOTE ; returned as ISO "YYYY-MM-DD" """
    if r.skip(b'"'):
        value = parse_date_text(r)
        r.expect(b'"', "the closing quote of a date")
        return value
    return parse_date_text(r)


def parse_zone(r: Reader) -> timezone:
    """zone = ("+" / "-") 4DIGIT ; hours and minutes east of Greenwich"""
    sign = r.peek()
    if sign not in (ord("+"), ord("-")):
        r.fail("expected a time zone")
    r.pos += 1
    hours = _fixed_digits(r, 2, "zone hours")
    minutes = _fixed_digits(r, 2, "zone minutes")
    if hours > 23 or minutes > 59:
        r.fail("time zone out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == ord("-") else offset)


def parse_time(r: Reader) -> tuple[int, int, int]:
    """time = 2DIGIT ":" 2DIGIT ":" 2DIGIT"""
    h = _fixed_digits(r, 2, "hours")
    r.expect(b":", '":" in a time')
    m = _fixed_digits(r, 2, "minutes")
    r.expect(b":", '":" in a time')
    s = _fixed_digits(r, 2, "seconds")
    return h, m, s


def parse_date_time(r: Reader) -> DateTime:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
    DQUOTE ; date-day-fixed = (SP DIGIT) / 2DIGIT"""
    r.expect(b'"', "a quoted date-time")
    day = _fixed_digits(r, 1, "a day") if r.skip(b" ") else _fixed_digits(r, 2, "a day")
    r.expect(b"-", '"-" in a date-time')
    month = parse_date_month(r)
    r.expect(b"-", '"-" in a date-time')
    year = _fixed_digits(r, 4, "a four-digit year")
    r.sp()
    h, m, s = parse_time(r)
    r.sp()
    zone = parse_zone(r)
    r.expect(b'"', "the closing quote of a date-time")
    try:
        return DateTime(datetime(year, month, day, h, m, s, tzinfo=zone))
    except ValueError:
        r.fail("no such date or time")


def paren_list(r: Reader, parse_one: Callable[[Reader], T], empty_ok: bool) -> list[T]:
    """The common shape "(" [item *(SP item)] ")" of many rules."""
    r.expect(b"(", '"("')
    items: list[T] = []
    if r.skip(b")"):
        if not empty_ok:
            r.fail("empty list")
        return items
    items.append(parse_one(r))
    while not r.skip(b")"):
        r.sp()
        items.append(parse_one(r))
    return items


def parse_upper_atom(r: Reader) -> str:
    """An atom whose case does not matter (option names, capabilities): upper-cased."""
    return parse_atom(r).upper()
