"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import base64

from pushmail.imap.errors import ProtocolError


class InvalidName(str):
    """A mailbox name that is syntactically fine (an astring) but not valid modified
    UTF-7, kept as sent. It names no mailbox: SELECT, CREATE and the like answer NO
    and LIST finds nothing, never BAD, which strict clients treat as a broken
    connection (issue 14, item 9)."""

    __slots__ = ()


def _b64(chars: str) -> str:
    raw = chars.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode_mutf7(name: str) -> str:
    """Encode a Unicode name: printable ASCII stays, ``&`` becomes ``&-``, the rest
    goes as modified BASE64 of UTF-16 between ``&`` and ``-``."""
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending = []
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64("".join(pending)) + "-")
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """Decode a modified UTF-7 name; ProtocolError if it is not valid."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if not (0x20 <= ord(ch) <= 0x7E):
            raise ProtocolError("mailbox name is not modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ProtocolError("unterminated modified BASE64 in mailbox name")
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            if "=" in chunk or "/" in chunk:
                raise ProtocolError("'=' or '/' in modified BASE64 in mailbox name")
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                decoded = raw.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError("bad modified BASE64 in mailbox name") from exc
            if any(0x20 <= ord(c) <= 0x7E for c in decoded):
                # RFC 3501 §5.1.3: printable ASCII must represent itself.
                raise ProtocolError("printable ASCII in modified BASE64 in mailbox name")
            out.append(decoded)
        i = end + 1
    return "".join(out)
