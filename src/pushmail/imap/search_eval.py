"""Does one message match a SEARCH key? (RFC 3501 §6.4.4, RFC 7162, RFC 5182)

Choices where the RFC leaves room:

* BEFORE/ON/SINCE compare the calendar date of the internal date *in the internal
  date's own zone* (the zone it was delivered or APPENDed with), ignoring the time.
* SENTBEFORE/SENTON/SENTSINCE compare the calendar date written in the Date: header,
  in the Date: header's own zone. A message without a parseable Date: matches none of
  them.
* String keys are case-insensitive substring matches after Unicode case folding.
  Header values are RFC 2047-decoded; raw 8-bit header text is read as UTF-8 when it
  is valid UTF-8, else as Latin-1. BODY and TEXT look at the text/* parts (and the
  headers of embedded messages) with their transfer encoding undone and their charset
  decoded; attachments of other types are not searched, except delivery and
  disposition reports (message/delivery-status and kin), which are text. TEXT adds
  the top-level header.
* FROM, TO, CC, BCC (and Sender, Reply-To) match against the addresses written
  again as ``name <mailbox@host>`` (``address_text``), not the raw field: comments
  and source routes do not split an address a user types.
* Keywords and flags compare case-insensitively.

The message is parsed at most once per context (the tree and the decoded text are
cached in it), and only when a key needs it: see ``needs_body``.
"""

from __future__ import annotations

import contextlib
import email.utils
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message

from pushmail.imap.commands import (
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
from pushmail.mime.addresses import Address, Group, parse_addresses
from pushmail.mime.rawparts import RawPart, parse_message
from pushmail.mime.sections import UnknownCteError, decode_cte


@dataclass(slots=True)
class SearchContext:
    """One message as SEARCH sees it; ``saved`` holds the UIDs of ``$`` (RFC 5182)."""

    seq: int
    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    modseq: int
    max_seq: int
    max_uid: int
    get_raw: Callable[[], bytes]
    saved: frozenset[int] = frozenset()
    emailid: str | None = None  # RFC 8474, set when the key asks for it
    savedate: datetime | None = None  # RFC 8514, set when the key asks for it
    now: float = 0.0  # unix seconds the command runs at: OLDER/YOUNGER (RFC 5032)
    _raw: bytes | None = field(default=None, init=False, repr=False)
    _tree: RawPart | None = field(default=None, init=False, repr=False)
    _body_text: str | None = field(default=None, init=False, repr=False)
    _header_text: str | None = field(default=None, init=False, repr=False)
    _lower_flags: frozenset[str] | None = field(default=None, init=False, repr=False)

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.get_raw()
        return self._raw

    def tree(self) -> RawPart:
        if self._tree is None:
            self._tree = parse_message(self.raw())
        return self._tree

    def header(self) -> Message:
        return self.tree().header

    def body_text(self) -> str:
        """Case-folded decoded text of the body, for BODY and TEXT."""
        if self._body_text is None:
            self._body_text = "\n".join(_texts(self.tree(), self.raw())).casefold()
        return self._body_text

    def header_text(self) -> str:
        """Case-folded decoded top-level header, for TEXT."""
        if self._header_text is None:
            self._header_text = _header_lines(self.header()).casefold()
        return self._header_text

    def has_flag(self, flag: str) -> bool:
        if self._lower_flags is None:
            self._lower_flags = frozenset(f.lower() for f in self.flags)
        return flag.lower() in self._lower_flags


def needs_body(key: SearchKey) -> bool:
    """Whether evaluating ``key`` reads the message (headers or body)."""
    if isinstance(key, SearchHeader | SearchText):
        return True
    if isinstance(key, SearchDate):
        return key.sent
    if isinstance(key, SearchNot):
        return needs_body(key.key)
    if isinstance(key, SearchOr):
        return needs_body(key.left) or needs_body(key.right)
    if isinstance(key, SearchAnd):
        return any(needs_body(k) for k in key.keys)
    return False


def matches(key: SearchKey, ctx: SearchContext) -> bool:
    """True when the message of ``ctx`` satisfies ``key``."""
    if isinstance(key, SearchAnd):
        return all(matches(k, ctx) for k in key.keys)
    if isinstance(key, SearchOr):
        return matches(key.left, ctx) or matches(key.right, ctx)
    if isinstance(key, SearchNot):
        return not matches(key.key, ctx)
    if isinstance(key, SearchAll):
        return True
    if isinstance(key, SearchFlag):
        return ctx.has_flag(key.flag) == key.present
    if isinstance(key, SearchNew):
        return ctx.has_flag("\\Recent") and not ctx.has_flag("\\Seen")
    if isinstance(key, SearchOld):
        return not ctx.has_flag("\\Recent")
    if isinstance(key, SearchSize):
        return ctx.size > key.n if key.larger else ctx.size < key.n
    if isinstance(key, SearchModseq):
        return ctx.modseq >= key.modseq
    if isinstance(key, SearchObjectId):  # no THREADIDs (FETCH says NIL): none matches
        return key.kind == "EMAILID" and ctx.emailid == key.value
    if isinstance(key, SearchSet):
        return _in_set(key, ctx)
    if isinstance(key, SearchWithin):  # RFC 5032 §3: OLDER is "more than n", YOUNGER
        age = ctx.now - ctx.internaldate.timestamp()  # "less than or equal"
        return age > key.seconds if key.older else age <= key.seconds
    if isinstance(key, SearchDate):
        return _date_matches(key, ctx)
    if isinstance(key, SearchHeader):
        return _header_matches(key, ctx)
    return _text_matches(key, ctx)


def _in_set(key: SearchSet, ctx: SearchContext) -> bool:
    if key.set.saved:
        return ctx.uid in ctx.saved
    if key.uid:
        return key.set.contains(ctx.uid, ctx.max_uid)
    return key.set.contains(ctx.seq, ctx.max_seq)


def _date_matches(key: SearchDate, ctx: SearchContext) -> bool:
    try:
        wanted = date.fromisoformat(key.date)
    except ValueError:
        return False
    if key.sent:
        day = sent_date(ctx.header())
        if day is None:
            return False
    elif key.saved and ctx.savedate is not None:
        day = ctx.savedate.date()
    else:  # a message saved before save dates were kept: its internal date
        day = ctx.internaldate.date()
    if key.op == "BEFORE":
        return day < wanted
    if key.op == "ON":
        return day == wanted
    return day >= wanted


def sent_date(header: Message) -> date | None:
    """The calendar date of the Date: header in its own zone, or None."""
    value = header.get("Date")
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(str(value)).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})


def _header_matches(key: SearchHeader, ctx: SearchContext) -> bool:
    values = ctx.header().get_all(key.field) or []
    needle = key.value.casefold()
    if key.field.lower() in _ADDRESS_FIELDS:
        return any(needle in address_text(str(v)).casefold() for v in values)
    return any(needle in decode_value(str(v)).casefold() for v in values)


def address_text(value: str) -> str:
    """An address field as SEARCH reads it: each address written again as
    ``name <mailbox@host>`` (name RFC 2047-decoded), groups as ``name: ...;``.

    So comments and source routes do not split what a user types:
    ``<user (comment)@ (comment) domain.org>`` is found by ``user@domain.org``, as
    Dovecot finds it, and text after where the list stops parsing is not searched.
    """
    out = []
    for entry in parse_addresses(value):
        if isinstance(entry, Group):
            members = ", ".join(_address_text(a) for a in entry.members)
            out.append(f"{decode_value(entry.name)}: {members};")
        else:
            out.append(_address_text(entry))
    return ", ".join(out)


def _address_text(a: Address) -> str:
    spec = _bytes_text((a.mailbox or "").encode("latin-1", "replace"))
    if a.host:
        spec += "@" + _bytes_text(a.host.encode("latin-1", "replace"))
    return f"{decode_value(a.name)} <{spec}>" if a.name else spec


def _text_matches(key: SearchText, ctx: SearchContext) -> bool:
    needle = key.value.casefold()
    if needle in ctx.body_text():
        return True
    return key.where == "TEXT" and needle in ctx.header_text()


# --------------------------------------------------------------------------- decoding


def _bytes_text(data: bytes, charset: str | None = None) -> str:
    """Bytes to text: the given charset, else UTF-8 if valid, else Latin-1."""
    if charset:
        try:
            return data.decode(charset, "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_value(value: str) -> str:
    """A header value (Latin-1 text of its raw bytes, maybe folded), RFC 2047-decoded."""
    text = _bytes_text(value.replace("\r", "").replace("\n", "").encode("latin-1", "replace"))
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, ValueError):
        pass
    try:
        pieces = decode_header(text)
    except (HeaderParseError, ValueError):
        return text
    out = []
    for chunk, charset in pieces:
        out.append(chunk if isinstance(chunk, str) else _bytes_text(chunk, charset))
    return "".join(out)


def _header_lines(header: Message) -> str:
    return "\n".join(f"{k}: {decode_value(str(v))}" for k, v in header.items())


# Reports that are text in all but name (RFC 3464 §2.1, RFC 6533, RFC 8098): a
# bounce's "Final-Recipient" is searchable, as in Dovecot.
_TEXT_REPORTS = frozenset(
    {
        ("message", "delivery-status"),
        ("message", "global-delivery-status"),
        ("message", "disposition-notification"),
        ("message", "global-disposition-notification"),
    }
)


def _texts(part: RawPart, raw: bytes) -> list[str]:
    """Decoded text of the text/* leaves under ``part`` and of embedded headers."""
    if part.children:
        return [t for child in part.children for t in _texts(child, raw)]
    if part.message is not None:
        inner = part.message
        return [_header_lines(inner.header), *_texts(inner, raw)]
    if part.maintype != "text" and (part.maintype, part.subtype) not in _TEXT_REPORTS:
        return []
    cte = str(part.header.get("Content-Transfer-Encoding") or "").strip().lower()
    body = part.body_bytes(raw)
    with contextlib.suppress(UnknownCteError):  # unknown encoding: search it as is
        body = decode_cte(body, cte)
    try:
        charset = part.header.get_content_charset()
    except (LookupError, ValueError):  # pragma: no cover - email is lenient here
        charset = None
    return [_bytes_text(body, charset)]
