"""APPEND, with MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469): every message of the
command is built first (each URL part read from the user's own mail), then all are
stored in one transaction, so the command appends all of them or none (a bad URL,
an empty message, a quota exceeded by the last one: nothing is appended)."""

from __future__ import annotations

from datetime import UTC, datetime

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import commands as c
from pushmail.imap.errors import CommandFailed
from pushmail.imap.imap_url import parse_message_url
from pushmail.imap.session import Session
from pushmail.imap.structure import build_cache
from pushmail.imap.types import SequenceSet
from pushmail.mime.sections import extract_section
from pushmail.store.interfaces import NewMessage, NotFound, Store


def append(s: Session, cmd: c.Append, store: Store) -> None:
    box = s.mailbox(store, cmd.mailbox, trycreate=True)
    budget = [s.server.max_append]  # bytes the command may still build
    new = [_message(s, store, m, budget) for m in cmd.messages]
    done = store.deliver([(box.id, m) for m in new])  # one transaction: all or none
    s.events.append(MailboxChanged(box.user_id, box.id, done[-1].modseq, "new"))
    uids = SequenceSet.from_ints([d.uid for d in done]).encode()  # RFC 4315 append-uid
    s.ok(cmd.tag, "APPEND completed", f"APPENDUID {done[0].uidvalidity} {uids}")


def _message(s: Session, store: Store, m: c.AppendMessage, budget: list[int]) -> NewMessage:
    raw = b"".join(_part(s, store, p, budget) for p in m.parts) if m.parts else m.message
    if not raw:
        raise CommandFailed("empty message")
    flags = frozenset(f for f in m.flags if f != "\\Recent")
    when = m.internaldate.value if m.internaldate else datetime.now(UTC)
    return NewMessage(raw, build_cache(raw), flags, when)


def _part(s: Session, store: Store, part: c.CatPart, budget: list[int]) -> bytes:
    data = part if isinstance(part, bytes) else _url_part(s, store, part)
    # URL parts copy stored mail: without a bound, a short command naming one big
    # message a thousand times would build gigabytes (RFC 4469 TOOBIG).
    budget[0] -= len(data)
    if budget[0] < 0:
        raise CommandFailed("the message would be too big", "TOOBIG")
    return data


def _url_part(s: Session, store: Store, part: c.CatUrl) -> bytes:
    url = parse_message_url(part.url)
    bad = CommandFailed("CATENATE: cannot use that URL", "BADURL " + _resp_text(part.url))
    if url is None:
        raise bad
    box = store.get_mailbox(s.require_user().id, url.mailbox)
    if box is None or url.uidvalidity not in (None, box.uidvalidity):
        raise bad
    try:
        raw = store.get_raw(box.id, url.uid)
    except NotFound:
        raise bad from None
    if url.section is None:
        return raw
    data = extract_section(raw, url.section)
    if data is None:
        raise bad
    return data


def _resp_text(url: str) -> str:
    """The URL as the code's url-resp-text: no "]", no CR/LF (RFC 4469 §6)."""
    return "".join(ch for ch in url if ch not in "]\r\n\x00") or "-"
