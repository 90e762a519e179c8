"""The sort and thread keys of one message text (RFC 5256, RFC 5957), computed from
its header once, at delivery, so that SORT and THREAD never parse a message.

- Strings are kept in the form they are compared in: i;unicode-casemap (RFC 5051),
  as Dovecot does it: each character's simple titlecase mapping, then its
  compatibility decomposition, compared by code point (which is UTF-8 octet order).
- The base subject follows RFC 5256 §2.1 step by step (``base_subject``); whether a
  Re:/Fwd: part was removed is kept for the subject merging of THREAD=REFERENCES.
- Header values are RFC 2047-decoded; raw 8-bit text is read as UTF-8 when valid,
  else as Latin-1 (as SEARCH does).
- ``KEYS_VERSION`` is stored with every row: a row of an older version is computed
  again when it is read, so changing the extraction needs no migration.
"""

from __future__ import annotations

import email.utils
import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any, Protocol

from pushmail.mime.addresses import Address, Group, parse_addresses
from pushmail.store.interfaces import SortKeys

KEYS_VERSION = 2
_WANTED = (b"subject", b"from", b"to", b"cc", b"date", b"message-id", b"references",
           b"in-reply-to")


def casemap(text: str) -> str:
    """i;unicode-casemap's comparison form: simple titlecase, then decomposition."""
    if text.isascii():
        return text.upper()
    out = []
    for ch in text:
        t = ch.title()
        out.append(t if len(t) == 1 else ch)
    return unicodedata.normalize("NFKD", "".join(out))


# RFC 5256 §5: subj-trailer = "(fwd)" / WSP; subj-blob = "[" *BLOBCHAR "]" *WSP;
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; subj-leader =
# (*subj-blob subj-refwd) / WSP. Literal strings of the ABNF are case-insensitive.
_TRAILER = re.compile(r"(?:\(fwd\)| )$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\] *"
_LEADER = re.compile(rf"(?:(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:| )", re.IGNORECASE)
_BLOB_RE = re.compile(_BLOB)
_SPACES = re.compile(r"[ \t\r\n]+")


def base_subject(subject: str) -> tuple[str, bool]:
    """(base subject, whether it was a reply/forward) of a decoded Subject value,
    not yet casemapped: RFC 5256 §2.1 steps 1-7."""
    text = _SPACES.sub(" ", subject)  # step 1 (decoding is the caller's)
    reply = False
    while True:
        while m := _TRAILER.search(text):  # step 2
            reply = reply or m.group(0) != " "
            text = text[: m.start()]
        while True:  # steps 3-5
            before = text
            while m := _LEADER.match(text):  # step 3
                reply = reply or m.group(0) != " "
                text = text[m.end():]
            m = _BLOB_RE.match(text)  # step 4: only if something is left
            if m and text[m.end():].strip(" "):
                text = text[m.end():]
            if text == before:
                break
        if len(text) >= 6 and text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]  # step 6, then again from step 2
            reply = True
            continue
        return text, reply


def _unfold(raw: bytes) -> dict[bytes, bytes]:
    """The first occurrence of each wanted field of the header, unfolded."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[:end]
    fields: dict[bytes, bytes] = {}
    name: bytes | None = None
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                fields[name] += b" " + line.strip()
            continue
        name = None
        colon = line.find(b":")
        if colon <= 0:
            continue
        key = line[:colon].strip().lower()
        if key in _WANTED and key not in fields:
            name = key
            fields[key] = line[colon + 1:].strip()
    return fields


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_words(text: str) -> str:
    """``text`` with its RFC 2047 encoded-words decoded (left as is when broken)."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, ValueError, UnicodeDecodeError):
        return text


def _first(value: bytes | None) -> Address | None:
    if not value:
        return None
    for entry in parse_addresses(_text(value)):
        if isinstance(entry, Group):
            # The first address of the ENVELOPE list is the group's start marker,
            # whose addr-mailbox is the group name (RFC 3501 §7.4.2): "first From
            # address" in RFC 5256 §3 is that, as Dovecot takes it.
            return Address(None, None, entry.name, None)
        return entry
    return None


def _mailbox(addr: Address | None) -> str:
    return casemap(addr.mailbox or "") if addr is not None else ""


def _display(addr: Address | None) -> str:
    """RFC 5957 §2: the display name when there is one, else the addr-spec."""
    if addr is None:
        return ""
    name = decode_words(addr.name or "").strip()
    if name:
        return casemap(name)
    spec = addr.mailbox or ""
    if addr.host:
        spec += "@" + addr.host
    return casemap(spec)


_MSGID = re.compile(rb"<([^<>\s]+)>")


def _ids(value: bytes | None) -> list[str]:
    if not value:
        return []
    return [_text(m.group(1)) for m in _MSGID.finditer(value) if b"@" in m.group(1)]


def _sent(value: bytes | None) -> int | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(_text(value))
        return None if parsed is None else int(email.utils.mktime_tz(parsed))
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def extract(raw: bytes) -> SortKeys:
    """The sort keys of the message ``raw``."""
    f = _unfold(raw)
    subject, reply = base_subject(decode_words(_text(f.get(b"subject", b""))))
    sender, to = _first(f.get(b"from")), _first(f.get(b"to"))
    own = _ids(f.get(b"message-id"))
    refs = _ids(f.get(b"references")) or _ids(f.get(b"in-reply-to"))[:1]
    return SortKeys(
        subject=casemap(subject),
        reply=reply,
        from_=_mailbox(sender),
        to=_mailbox(to),
        cc=_mailbox(_first(f.get(b"cc"))),
        display_from=_display(sender),
        display_to=_display(to),
        sent=_sent(f.get(b"date")),
        message_id=own[0] if own else None,
        references=tuple(refs),
    )


# The row form shared by both backends (``sortkeys`` table, same column order).
COLUMNS = (
    "subject, reply, addr_from, addr_to, addr_cc, disp_from, disp_to, sent, msgid, refs"
)
Row = tuple[str, int, str, str, str, str, str, int | None, str | None, str]


def to_row(k: SortKeys) -> Row:
    return (k.subject, int(k.reply), k.from_, k.to, k.cc, k.display_from, k.display_to,
            k.sent, k.message_id, " ".join(k.references))


def from_row(r: Row) -> SortKeys:
    return SortKeys(r[0], bool(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                    tuple(r[9].split()))


_NAMES = [c.strip() for c in COLUMNS.split(",")]


def upsert_sql(param: str) -> str:
    """The statement that keeps one body's keys, with the backend's placeholder
    (``?`` or ``%s``); parameters as ``upsert_params``. Nothing is kept for a body
    that is gone (dropped by an expunge meanwhile)."""
    marks = ", ".join([param] * len(_NAMES))
    return (
        f"INSERT INTO sortkeys (body_id, version, {COLUMNS}) "
        f"SELECT id, {param}, {marks} FROM bodies WHERE id = {param} "
        "ON CONFLICT (body_id) DO UPDATE SET version = excluded.version, "
        + ", ".join(f"{c} = excluded.{c}" for c in _NAMES)
    )


def upsert_params(body_id: int, keys: SortKeys) -> tuple[object, ...]:
    return (KEYS_VERSION, *to_row(keys), body_id)


class _Conn(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


def store_keys(conn: _Conn, param: str, body_id: int, raw: bytes) -> None:
    """Keep the keys of a text being stored, inside the caller's transaction."""
    conn.execute(upsert_sql(param), upsert_params(body_id, extract(raw)))
