"""The PREVIEW of a message (RFC 8970): a short plain-text line for a client's list
or a push notification, computed once at delivery with the other structures
(``structure.build_cache``) and stored, so that FETCH PREVIEW never parses a body.

How it is made, following Dovecot's snippet where the RFC leaves the algorithm to
the server:

* the first text/plain or text/html part that is not an attachment, depth first,
  not looking into embedded messages; none: the empty string (RFC 8970: a message
  without meaningful preview text gets a zero-length string);
* its transfer encoding undone (an unknown one, such as x-uuencode: the empty
  string, as Dovecot) and its charset decoded (unknown: UTF-8 if valid, else
  Latin-1); HTML reduced to its text by the standard library's parser, without
  ``<script>``/``<style>``/``<head>`` content;
* quoted lines (starting with ``>``) left out, every run of white space one space,
  no leading or trailing space;
* at most ``PREVIEW_CHARS`` characters (code points), the length RFC 8970 asks a
  server to keep to (it never allows more than 256).

Only the first ``_SCAN_BYTES`` of the part are read: a 200-character line never
needs more, and a huge text part costs no more than a small one.
"""

from __future__ import annotations

import contextlib
import re
from html.parser import HTMLParser

from pushmail.mime.rawparts import RawPart
from pushmail.mime.sections import UnknownCteError, decode_cte

PREVIEW_CHARS = 200
_SCAN_BYTES = 32 * 1024  # of the encoded part
_WHITESPACE = re.compile(r"\s+")
_SKIPPED_HTML = frozenset({"script", "style", "head", "title"})
# Tags after which text reads as a new line (so a quoted ">" line inside one is seen).
_BLOCK_HTML = frozenset({"br", "p", "div", "tr", "li", "blockquote", "h1", "h2", "h3", "table"})


def build_preview(root: RawPart, raw: bytes) -> str:
    """The preview text of the message ``raw`` whose part tree is ``root``."""
    part = _first_text(root)
    if part is None:
        return ""
    body = raw[part.body_start : min(part.end, part.body_start + _SCAN_BYTES)]
    cte = str(part.header.get("Content-Transfer-Encoding") or "").strip().lower()
    try:
        body = decode_cte(body, cte)
    except UnknownCteError:  # no meaningful text
        return ""
    text = _decode(body, _charset(part))
    if part.subtype == "html":
        text = _html_text(text)
    return _squeeze(text)


def _first_text(part: RawPart) -> RawPart | None:
    if part.children:
        for child in part.children:
            found = _first_text(child)
            if found is not None:
                return found
        return None
    if part.maintype != "text" or part.subtype not in ("plain", "html"):
        return None
    disposition = str(part.header.get("Content-Disposition") or "").strip().lower()
    return None if disposition.startswith("attachment") else part


def _charset(part: RawPart) -> str | None:
    try:
        return part.header.get_content_charset()
    except (LookupError, ValueError):  # pragma: no cover - email is lenient here
        return None


def _decode(data: bytes, charset: str | None) -> str:
    if charset:
        try:
            return data.decode(charset, "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _squeeze(text: str) -> str:
    """Unquoted lines, white space collapsed, cut to PREVIEW_CHARS."""
    kept: list[str] = []
    size = 0
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        words = _WHITESPACE.sub(" ", line).strip()
        if words:
            kept.append(words)
            size += len(words) + 1
            if size > PREVIEW_CHARS:
                break
    out = " ".join(kept).replace("\x00", "")
    return out[:PREVIEW_CHARS].rstrip()


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_HTML:
            self._skipping += 1
        elif tag in _BLOCK_HTML:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_HTML and self._skipping:
            self._skipping -= 1
        elif tag in _BLOCK_HTML:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    with contextlib.suppress(Exception):  # malformed HTML: keep what was read
        parser.feed(html)
        parser.close()
    return "".join(parser.parts)
