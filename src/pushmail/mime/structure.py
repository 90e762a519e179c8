"""ENVELOPE, BODYSTRUCTURE and BODY of a message, IMAP-encoded (RFC 3501 §7.4.2).

Computed once per delivery (``build_cache``) and kept with the message, so FETCH of
these items never re-parses. Choices, following Dovecot where the RFC is silent:

* sizes are octets of the body exactly as stored; lines are LF-terminated lines, plus
  one for a final line without a line end;
* a text/* part without a charset parameter reports ``("charset" "us-ascii")``;
* a multipart without any body part (no delimiter found) reports one empty
  text/plain part, because the grammar needs at least one;
* ENVELOPE strings are the raw header text, unfolded and not RFC 2047-decoded;
  an address without a mailbox or domain gets ``MISSING_MAILBOX`` /
  ``MISSING_DOMAIN`` so that a NIL host keeps meaning "group syntax";
* body-fld-md5 is the Content-MD5 header when present, else NIL.

Never raises on malformed input: a broken message gets a best-effort structure.
"""

from __future__ import annotations

import email.utils
from email.message import Message
from urllib.parse import quote

from pushmail.imap.encoder import NIL, nstring, paren, quoted
from pushmail.mime.rawparts import RawPart, parse_message, raw_value
from pushmail.store.interfaces import MessageCache

_EMPTY_MULTIPART_CHILD = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'


def build_cache(raw: bytes) -> MessageCache:
    """ENVELOPE, BODYSTRUCTURE and BODY of ``raw``, ready to send."""
    try:
        root = parse_message(raw)
        return MessageCache(
            envelope=envelope(root.header),
            bodystructure=body_structure(root, raw, extended=True),
            body=body_structure(root, raw, extended=False),
        )
    except Exception:  # pragma: no cover - last resort: delivery must never fail here
        return _fallback(raw)


def _fallback(raw: bytes) -> MessageCache:
    """The structure of an opaque text/plain message, for input we could not parse."""
    lines = count_lines(raw)
    empty_env = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    basic = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d' % (len(raw), lines)
    return MessageCache(empty_env, basic + b" NIL NIL NIL NIL)", basic + b")")


def count_lines(body: bytes) -> int:
    """Text lines of ``body``: each line end, plus a final unterminated line."""
    n = body.count(b"\n")
    if body and not body.endswith(b"\n"):
        n += 1
    return n


# --------------------------------------------------------------------------- envelope


class _Fields:
    """The first value of each field of one header block, looked up by lower-case
    name: one pass over the fields, where a pass per field looked up had been a
    tenth of the cost of a delivery's parse."""

    __slots__ = ("_first", "header")

    def __init__(self, header: Message) -> None:
        self.header = header
        self._first: dict[str, str] = {}
        for key, value in header.raw_items():
            self._first.setdefault(key.lower(), value)

    def first(self, name: str) -> bytes | None:
        """Raw, unfolded value of the first ``name`` field, or None if absent."""
        value = self._first.get(name)
        return None if value is None else raw_value(value).strip()


def envelope(header: Message) -> bytes:
    """``envelope`` = "(" date subject from sender reply-to to cc bcc in-reply-to
    message-id ")"; Sender and Reply-To default to From (RFC 3501 §7.4.2)."""
    first = _Fields(header).first
    from_ = addresses(first("from"))
    sender = addresses(first("sender"))
    reply_to = addresses(first("reply-to"))
    fields = [
        nstring(first("date")),
        nstring(first("subject")),
        from_,
        sender if sender != NIL else from_,
        reply_to if reply_to != NIL else from_,
        addresses(first("to")),
        addresses(first("cc")),
        addresses(first("bcc")),
        nstring(first("in-reply-to")),
        nstring(first("message-id")),
    ]
    return paren(fields)


def addresses(value: bytes | None) -> bytes:
    """An address list as ``((name adl mailbox host) ...)``, groups as RFC 3501 says:
    ``(NIL NIL "group" NIL)`` members ``(NIL NIL NIL NIL)``; NIL when empty."""
    if value is None:
        return NIL
    out: list[bytes] = []
    for group, members in split_groups(value.decode("latin-1")):
        if group is not None:
            out.append(b"(NIL NIL " + quoted(group.encode("latin-1")) + b" NIL)")
        parsed = email.utils.getaddresses([members])
        out.extend(_address(name, addr) for name, addr in parsed if name or addr)
        if group is not None:
            out.append(b"(NIL NIL NIL NIL)")
    return b"(" + b"".join(out) + b")" if out else NIL


def _address(name: str, addr: str) -> bytes:
    mailbox, at, host = addr.rpartition("@")
    if not at:
        mailbox, host = addr, ""
    name_b = nstring(name.encode("latin-1", "replace")) if name else NIL
    mailbox_b = quoted((mailbox or "MISSING_MAILBOX").encode("latin-1", "replace"))
    host_b = quoted((host or "MISSING_DOMAIN").encode("latin-1", "replace"))
    return b"(" + b" ".join((name_b, NIL, mailbox_b, host_b)) + b")"


def split_groups(value: str) -> list[tuple[str | None, str]]:
    """Split an address-list into group and non-group runs (RFC 5322 §3.4).

    ``email.utils.getaddresses`` parses the addresses but flattens groups, and
    ENVELOPE must show them; this only finds the top-level ``name:`` ... ``;`` of a
    group (outside quotes, comments and angle brackets) and hands each run back to
    ``email`` for the addresses themselves.
    """
    runs: list[tuple[str | None, str]] = []
    buf: list[str] = []
    group: str | None = None
    comma = 0  # where the text after the last top-level comma starts in ``buf``
    quote_on, depth, angle, escaped = False, 0, False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote_on:
            quote_on = ch != '"'
        elif ch == '"':
            quote_on = True
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth:
            pass
        elif ch in "<>":
            angle = ch == "<"
        elif ch == "," and not angle:
            comma = len(buf) + 1
        elif ch == ":" and not angle and group is None:
            runs.append((None, "".join(buf[:comma])))
            group, buf, comma = "".join(buf[comma:]).strip().strip('"'), [], 0
            continue
        elif ch == ";" and group is not None:
            runs.append((group, "".join(buf)))
            group, buf, comma = None, [], 0
            continue
        buf.append(ch)
    runs.append((group, "".join(buf)))
    return [(g, text) for g, text in runs if g is not None or text.strip(" \t,")]


# --------------------------------------------------------------------------- body


def _params(header: Message, name: str) -> list[tuple[bytes, bytes]]:
    """Parameters of a structured field as raw bytes; RFC 2231 values are joined and
    shown as ``name*`` = ``charset'lang'%XX`` (as Dovecot does)."""
    try:
        params = header.get_params(header=name) or []
    except Exception:  # pragma: no cover - email is lenient, but be safe on peer input
        return []
    out: list[tuple[bytes, bytes]] = []
    for key, value in params[1:]:
        if not key:
            continue
        if isinstance(value, tuple):
            charset, lang, text = value
            encoded = quote(text.encode("latin-1", "replace"), safe="")
            out.append(
                (
                    (key + "*").encode("latin-1", "replace"),
                    f"{charset or ''}'{lang or ''}'{encoded}".encode("latin-1", "replace"),
                )
            )
        else:
            out.append((key.encode("latin-1", "replace"), value.encode("latin-1", "replace")))
    return out


def _param_list(pairs: list[tuple[bytes, bytes]]) -> bytes:
    if not pairs:
        return NIL
    return paren(quoted(k) + b" " + quoted(v) for k, v in pairs)


def _disposition(fields: _Fields) -> bytes:
    value = fields.first("content-disposition")
    if not value:
        return NIL
    kind = value.split(b";", 1)[0].strip()
    if not kind:
        return NIL
    params = _param_list(_params(fields.header, "content-disposition"))
    return b"(" + quoted(kind) + b" " + params + b")"


def _language(fields: _Fields) -> bytes:
    value = fields.first("content-language")
    if value is None:
        return NIL
    tags = [t.strip() for t in value.split(b",") if t.strip()]
    return paren(quoted(t) for t in tags) if tags else NIL


def _ext_common(fields: _Fields) -> bytes:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc: shared by both part kinds."""
    location = nstring(fields.first("content-location"))
    return b" ".join((_disposition(fields), _language(fields), location))


def body_structure(part: RawPart, raw: bytes, extended: bool) -> bytes:
    """``body`` (``extended`` False: the BODY item) or BODYSTRUCTURE of ``part``."""
    if part.is_multipart:
        return _multipart(part, raw, extended)
    return _single(part, raw, extended)


def _multipart(part: RawPart, raw: bytes, extended: bool) -> bytes:
    kids = [body_structure(c, raw, extended) for c in part.children]
    out = b"".join(kids) if kids else _EMPTY_MULTIPART_CHILD
    out += b" " + quoted(part.subtype.encode("latin-1", "replace"))
    if extended:
        out += (
            b" "
            + _param_list(_params(part.header, "content-type"))
            + b" "
            + _ext_common(_Fields(part.header))
        )
    return b"(" + out + b")"


def _single(part: RawPart, raw: bytes, extended: bool) -> bytes:
    header = part.header
    named = _Fields(header)
    body = part.body_bytes(raw)
    is_text = part.maintype == "text"
    pairs = _params(header, "content-type")
    if is_text and not any(k.lower() == b"charset" for k, _ in pairs):
        pairs.insert(0, (b"charset", b"us-ascii"))
    encoding = named.first("content-transfer-encoding") or b"7bit"
    fields = [
        quoted(part.maintype.encode("latin-1", "replace")),
        quoted(part.subtype.encode("latin-1", "replace")),
        _param_list(pairs),
        nstring(named.first("content-id")),
        nstring(named.first("content-description")),
        quoted(encoding),
        b"%d" % len(body),
    ]
    if part.message is not None:
        inner = part.message
        fields.append(envelope(inner.header))
        fields.append(body_structure(inner, raw, extended))
        fields.append(b"%d" % count_lines(body))
    elif is_text:
        fields.append(b"%d" % count_lines(body))
    if extended:
        fields.append(nstring(named.first("content-md5")))
        fields.append(_ext_common(named))
    return paren(fields)
