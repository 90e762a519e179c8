"""Byte-exact BODY[section] and decoded BINARY[section] (RFC 3501 §6.4.5, RFC 3516).

Part numbers follow RFC 3501: a multipart's parts are numbered from 1; a
non-multipart message (root or embedded) has exactly one part, 1, its body; the
numbers after a message/rfc822 part address the parts of the embedded message;
``n.HEADER`` / ``n.TEXT`` / ``n.HEADER.FIELDS`` apply to the message embedded in
message/rfc822 part ``n``; ``n.MIME`` is the MIME header of part ``n``.

A section that does not exist gives ``None``; FETCH renders that as NIL (as
Dovecot does), which the ``nstring`` of the grammar allows.
"""

from __future__ import annotations

import binascii

from pushmail.mime.rawparts import RawPart, parse_message
from pushmail.mime.section_spec import Section


class UnknownCteError(ValueError):
    """BINARY[] of a part whose Content-Transfer-Encoding we cannot undo: the caller
    answers ``NO [UNKNOWN-CTE]`` (RFC 3516 §4.3)."""


_IDENTITY_CTE = frozenset({"", "7bit", "8bit", "binary"})


def resolve_part(root: RawPart, numbers: tuple[int, ...]) -> RawPart | None:
    """The part named by ``numbers`` (non-empty), or None if there is no such part."""
    part: RawPart | None = root
    is_message = True  # ``part`` is a message whose body the next number indexes
    for n in numbers:
        if part is None:
            return None
        part = _child(part, n, is_message)
        is_message = False
    return part


def _child(part: RawPart, n: int, is_message: bool) -> RawPart | None:
    if part.children:
        return part.children[n - 1] if 1 <= n <= len(part.children) else None
    if part.is_multipart:
        return None
    if is_message:
        return part if n == 1 else None
    if part.message is not None:
        return _child(part.message, n, True)
    return None


def extract_section(raw: bytes, section: Section, root: RawPart | None = None) -> bytes | None:
    """The bytes of ``section`` of ``raw`` (before any partial), or None if absent.

    ``root`` may be passed when the caller already holds the parsed tree.
    """
    tree = root if root is not None else parse_message(raw)
    if not section.part:
        message: RawPart | None = tree
        if section.text is None:
            return raw
    else:
        part = resolve_part(tree, section.part)
        if part is None:
            return None
        if section.text is None:
            return part.body_bytes(raw)
        if section.text == "MIME":
            return part.header_bytes(raw)
        message = part.message
    if message is None or section.text == "MIME":
        return None
    if section.text == "TEXT":
        return message.body_bytes(raw)
    header = message.header_bytes(raw)
    if section.text == "HEADER":
        return header
    return header_fields(header, section.fields, section.text == "HEADER.FIELDS.NOT")


def split_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of a header block as (lower-cased name, exact bytes incl. folds).

    Only line boundaries are found here (a line starting with a blank continues the
    field before it); the blank line that ends the block is left out.
    """
    fields: list[tuple[bytes, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + line)
            continue
        name = line.split(b":", 1)[0].strip().lower() if b":" in line else b""
        fields.append((name, line))
    return fields


def header_fields(header: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """HEADER.FIELDS (or .NOT): the matching fields, case-insensitive, folds kept,
    followed by the blank line (RFC 3501 §6.4.5)."""
    wanted = {n.lower().encode("latin-1", "replace") for n in names}
    out = [text for name, text in split_fields(header) if (name in wanted) != exclude]
    body = b"".join(out)
    if body and not body.endswith(b"\n"):
        body += b"\r\n"
    return body + b"\r\n"


def apply_partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    """``<offset.length>``: the slice, empty when the offset is past the end."""
    if partial is None:
        return data
    offset, length = partial
    return data[offset : offset + length]


def decode_binary(raw: bytes, section: Section, root: RawPart | None = None) -> bytes | None:
    """BINARY[section]: the part's body with its transfer encoding undone.

    None if the part does not exist; ``UnknownCteError`` for an encoding other than
    7bit/8bit/binary/base64/quoted-printable. ``BINARY[]`` is the message as stored.
    """
    tree = root if root is not None else parse_message(raw)
    if not section.part:
        return raw
    part = resolve_part(tree, section.part)
    if part is None:
        return None
    body = part.body_bytes(raw)
    if part.is_multipart or part.message is not None:
        return body
    cte = (part.header.get("Content-Transfer-Encoding") or "").strip().lower()
    return decode_cte(body, cte)


def decode_cte(body: bytes, cte: str) -> bytes:
    """Undo a Content-Transfer-Encoding, leniently (junk in base64 is skipped)."""
    if cte in _IDENTITY_CTE:
        return body
    if cte == "base64":
        return _base64(body)
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    raise UnknownCteError(cte)


def _base64(body: bytes) -> bytes:
    clean = body.translate(None, _B64_JUNK)  # also drops "=": padding is re-made below
    usable = len(clean) - len(clean) % 4
    tail = clean[usable:]
    if len(tail) == 1:  # a lone sextet cannot carry a byte: drop it
        tail = b""
    try:
        return binascii.a2b_base64(clean[:usable] + tail + b"=" * (-len(tail) % 4))
    except binascii.Error:
        return b""


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(b for b in range(256) if b not in _B64_ALPHABET)
