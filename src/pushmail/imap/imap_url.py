"""The IMAP URLs a CATENATE ``URL`` part may name (RFC 4469 §5, RFC 5092 §6):
the absolute-path form ``/mailbox[;UIDVALIDITY=v]/;UID=u[/;SECTION=s]``, always of
the user's own mail. Anything else (another server or user, ``;PARTIAL=``,
``;URLAUTH=``) is refused by the handler with ``NO [BADURL]`` (RFC 4469 §6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from pushmail.imap.commands import Section
from pushmail.imap.errors import ProtocolError
from pushmail.imap.parse_fetch import parse_section_spec
from pushmail.imap.parse_lexer import Reader

_URL = re.compile(
    r"/(?P<box>[^;?#]+?)(?:;UIDVALIDITY=(?P<validity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})(?:/;SECTION=(?P<section>[^;/?#]+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class MessageUrl:
    mailbox: str  # UTF-8, percent-decoded; INBOX in any case is INBOX
    uidvalidity: int | None
    uid: int
    section: Section | None  # None: the whole message


def parse_message_url(url: str) -> MessageUrl | None:
    """The parts of a same-server message URL, or None when it is not one."""
    m = _URL.fullmatch(url)
    if m is None:
        return None
    mailbox = unquote(m.group("box"), errors="strict")
    if mailbox.upper() == "INBOX":
        mailbox = "INBOX"
    section = None
    if m.group("section") is not None:
        text = unquote(m.group("section")).encode("utf-8")
        r = Reader(text)
        try:
            section = parse_section_spec(r)
        except ProtocolError:
            return None
        if r.pos != len(text):
            return None
    validity = m.group("validity")
    return MessageUrl(
        mailbox, None if validity is None else int(validity), int(m.group("uid")), section
    )
