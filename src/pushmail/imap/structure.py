"""ENVELOPE, BODYSTRUCTURE and BODY of a message, IMAP-encoded (RFC 3501 §7.4.2).

Computed once per delivery (``build_cache``) and kept with the message, so FETCH of
these items never re-parses. Choices, following Dovecot where the RFC is silent:

* sizes are octets of the body exactly as stored; lines are its line ends (LF);
* a text/* part without a charset parameter reports ``"charset" "us-ascii"`` after
  its other parameters;
* a multipart without any body part (no boundary parameter, or no delimiter found)
  has one empty text/plain part, because the grammar needs at least one;
* comments in Content-Type/-Disposition/-Transfer-Encoding are left out, folded
  parameters unfolded, RFC 2231 continuations joined (``rawparts``);
* a field given twice (RFC 5322 §3.6 allows one): address lists are joined, other
  fields keep the last occurrence;
* ENVELOPE strings are the raw header text, unfolded and not RFC 2047-decoded;
  an address without a mailbox or domain gets ``MISSING_MAILBOX`` /
  ``MISSING_DOMAIN`` so that a NIL host keeps meaning "group syntax";
* body-fld-md5 is the Content-MD5 header when present, else NIL.

Never raises on malformed input: a broken message gets a best-effort structure.
"""

from __future__ import annotations

from email.message import Message
from urllib.parse import quote

from pushmail.imap.encoder import NIL, nstring, paren, quoted
from pushmail.mime.addresses import Address, Group, parse_addresses
from pushmail.mime.preview import build_preview
from pushmail.mime.rawparts import RawPart, parse_message, raw_value
from pushmail.store.interfaces import MessageCache

# Bump when what ``build_cache`` returns for some message changes: stored structures
# are then recomputed at the next start (``store/sqlite_refresh.py``).
# 1: folded/commented MIME parameters, RFC 5322 addresses, Dovecot's line counts.
# 2: the PREVIEW text (RFC 8970) is stored too.
STRUCTURE_VERSION = 2

_EMPTY_MULTIPART_CHILD = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'


def build_cache(raw: bytes) -> MessageCache:
    """ENVELOPE, BODYSTRUCTURE and BODY of ``raw``, ready to send."""
    try:
        root = parse_message(raw)
        return MessageCache(
            envelope=envelope(root.header),
            bodystructure=body_structure(root, raw, extended=True),
            body=body_structure(root, raw, extended=False),
            preview=build_preview(root, raw),
        )
    except Exception:  # pragma: no cover - last resort: delivery must never fail here
        return _fallback(raw)


def _fallback(raw: bytes) -> MessageCache:
    """The structure of an opaque text/plain message, for input we could not parse."""
    lines = count_lines(raw)
    empty_env = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    basic = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d' % (len(raw), lines)
    return MessageCache(empty_env, basic + b" NIL NIL NIL NIL)", basic + b")", "")


def count_lines(body: bytes) -> int:
    """Text lines of ``body``: its line ends. A last line without one is not counted,
    as Dovecot counts (the differential test pins it): a body part's last line ends
    where the CRLF before the next delimiter begins, and that CRLF belongs to the
    delimiter (RFC 2046 §5.1.1), so counting it would add one to every part."""
    return body.count(b"\n")


# --------------------------------------------------------------------------- envelope


_ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})


class _Fields:
    """The value of each field of one header block, looked up by lower-case name:
    one pass over the fields, where a pass per field looked up had been a tenth of
    the cost of a delivery's parse.

    A field that occurs more than once (RFC 5322 §3.6 allows one) is read as
    Dovecot reads it, which the differential test pins: address fields join
    their lists, every other field keeps its last occurrence."""

    __slots__ = ("_value", "header")

    def __init__(self, header: Message) -> None:
        self.header = header
        self._value: dict[str, str] = {}
        for key, value in header.raw_items():
            name = key.lower()
            if name in _ADDRESS_FIELDS and name in self._value:
                self._value[name] += "," + value
            else:
                self._value[name] = value

    def first(self, name: str) -> bytes | None:
        """Raw, unfolded value of the ``name`` field, or None if absent."""
        value = self._value.get(name)
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
    for entry in parse_addresses(value.decode("latin-1")):
        if isinstance(entry, Group):
            out.append(b"(NIL NIL " + quoted(_latin1(entry.name)) + b" NIL)")
            out.extend(_address(a) for a in entry.members)
            out.append(b"(NIL NIL NIL NIL)")
        else:
            out.append(_address(entry))
    return b"(" + b"".join(out) + b")" if out else NIL


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _address(a: Address) -> bytes:
    """An address; a missing mailbox or host is ``MISSING_MAILBOX`` /
    ``MISSING_DOMAIN`` so that a NIL host keeps meaning "group syntax"."""
    return (
        b"("
        + b" ".join(
            (
                nstring(_latin1(a.name)) if a.name else NIL,
                nstring(_latin1(a.route)) if a.route else NIL,
                quoted(_latin1(a.mailbox or "MISSING_MAILBOX")),
                quoted(_latin1(a.host or "MISSING_DOMAIN")),
            )
        )
        + b")"
    )


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
        pairs.append((b"charset", b"us-ascii"))  # after the others, as Dovecot puts it
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
