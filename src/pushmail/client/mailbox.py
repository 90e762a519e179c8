"""Mailbox operations on an open connection: EXAMINE, STATUS, fetching what is new, and
the download policy.

Finding "exactly what arrived while away" uses the stored UIDNEXT cursor: every UID at
or above it is new, and UIDs are never reused within one UIDVALIDITY (RFC 3501
§2.3.1.1). Three ways to learn which those are, best first:

* QRESYNC (RFC 7162 §3.2.5, after ``ENABLE QRESYNC``): ``EXAMINE folder (QRESYNC
  (uidvalidity modseq))`` answers in the same round trip with a FETCH for every message
  changed since the stored HIGHESTMODSEQ (new ones among them: those with UID >= cursor)
  and a ``VANISHED (EARLIER)`` for what was expunged, so only the new messages' headers
  are fetched, by exact UID, and a folder where only flags changed costs one command;
* CONDSTORE: the EXAMINE's HIGHESTMODSEQ; unchanged (with UIDNEXT) means nothing to do,
  else ``UID FETCH cursor:*``;
* plain UID ranges: ``UID FETCH cursor:*`` whenever UIDNEXT moved.

The download policy: a message up to ``max_size`` is fetched whole; a larger one only
as headers plus the first ``partial_bytes`` of its first text part, found from its
BODYSTRUCTURE, so a 40 MB attachment never crosses a metered link unasked.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from pushmail.client.connection import ImapClient
from pushmail.client.response import (
    ResponseError,
    Untagged,
    Value,
    count_uids,
    fetch_items,
    status_values,
)
from pushmail.client.rules import MessageInfo
from pushmail.client.settings import Download
from pushmail.client.state import FolderState
from pushmail.imap.commands import (
    Fetch,
    FetchAtt,
    FetchBody,
    QresyncParams,
    Section,
    Select,
    Status,
)
from pushmail.imap.types import SeqRange, SequenceSet

__all__ = [
    "NEW_MESSAGE_ITEMS",
    "MailboxInfo",
    "download",
    "examine",
    "examined",
    "fetch_new",
    "fetch_whole",
    "has_headers",
    "leave",
    "message_info",
    "new_messages",
    "new_messages_command",
    "status",
]

HEADER_FIELDS = ("FROM", "TO", "SUBJECT", "LIST-ID", "DATE", "MESSAGE-ID")


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    uidvalidity: int
    uidnext: int | None
    highestmodseq: int | None = None
    exists: int = 0
    # With QRESYNC: the UIDs the server reported changed since ``qresync_from`` (new
    # mail among them), and how many it reported vanished. None: not a QRESYNC EXAMINE.
    changed: tuple[int, ...] | None = None
    vanished: int = 0
    qresync_from: int | None = None


def qresync_params(conn: ImapClient, known: FolderState | None) -> QresyncParams | None:
    """The QRESYNC parameter for a folder we know (UIDVALIDITY and HIGHESTMODSEQ stored)
    on a connection where ``ENABLE QRESYNC`` succeeded; None otherwise."""
    if "QRESYNC" not in conn.enabled or known is None or not known.highestmodseq:
        return None
    return QresyncParams(known.uidvalidity, known.highestmodseq)


async def examine(
    conn: ImapClient, folder: str, known: FolderState | None = None, plain: bool = False
) -> MailboxInfo:
    """EXAMINE (read-only: watching must not clear \\Recent), with QRESYNC from the
    ``known`` state where possible, else with CONDSTORE if offered; ``plain``: with
    neither (where UIDNEXT against the cursor says enough)."""
    qresync = None if plain else qresync_params(conn, known)
    condstore = not plain and qresync is None and "CONDSTORE" in conn.capabilities
    cmd = Select(conn.next_tag(), folder, True, condstore, qresync)
    untagged, _ = await conn.command(cmd)
    return examined(untagged, folder, qresync)


def examined(
    untagged: list[Untagged], folder: str, qresync: QresyncParams | None = None
) -> MailboxInfo:
    """What an EXAMINE answered (``qresync``: the parameter it was sent with)."""
    codes: dict[str, int] = {}
    exists = vanished = 0
    changed: list[int] = []
    for r in untagged:
        if r.code in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ") and r.code_args:
            arg = r.code_args[0]
            if isinstance(arg, int):
                codes[r.code] = arg
        elif r.keyword == "EXISTS" and r.number is not None:
            exists = r.number
        elif r.keyword == "FETCH" and qresync is not None:
            uid = fetch_items(r.values).get("UID")
            if isinstance(uid, int):
                changed.append(uid)
        elif r.keyword == "VANISHED" and r.values:
            vanished += count_uids(r.values[-1])
    if "UIDVALIDITY" not in codes:
        raise ResponseError(f"EXAMINE {folder}: no UIDVALIDITY")
    return MailboxInfo(
        codes["UIDVALIDITY"],
        codes.get("UIDNEXT"),
        codes.get("HIGHESTMODSEQ"),
        exists,
        tuple(changed) if qresync is not None else None,
        vanished,
        qresync.modseq if qresync is not None else None,
    )


async def status(conn: ImapClient, folder: str) -> dict[str, int]:
    """STATUS folder (UIDNEXT UIDVALIDITY [HIGHESTMODSEQ]) — the polling probe."""
    items = ("UIDNEXT", "UIDVALIDITY") + (
        ("HIGHESTMODSEQ",) if "CONDSTORE" in conn.capabilities else ()
    )
    untagged, _ = await conn.command(Status(conn.next_tag(), folder, items))
    for r in untagged:
        if r.keyword == "STATUS" and len(r.values) >= 2:
            return status_values(r.values[1])
    raise ResponseError(f"STATUS {folder}: no answer")


def _uid_set(lo: int, hi: int | None = None) -> SequenceSet:
    return SequenceSet((SeqRange(lo, hi),))


# What the rules need of a new message: its UID, size and the headers they match.
NEW_MESSAGE_ITEMS: tuple[FetchAtt, ...] = (
    "UID",
    "RFC822.SIZE",
    FetchBody(Section(text="HEADER.FIELDS", fields=HEADER_FIELDS), peek=True),
)


def new_messages_command(
    conn: ImapClient, cursor: int, uids: tuple[int, ...] | None = None
) -> Fetch | None:
    """``UID FETCH`` of every message from the cursor on (only ``uids`` among them,
    when QRESYNC already named them); None when nothing is to be fetched."""
    wanted = sorted({u for u in uids if u >= cursor}) if uids is not None else None
    if wanted == []:
        return None
    which = SequenceSet.from_ints(wanted) if wanted is not None else _uid_set(cursor)
    return Fetch(conn.next_tag(), which, NEW_MESSAGE_ITEMS, uid=True)


def new_messages(
    untagged: list[Untagged],
    account: str,
    folder: str,
    uidvalidity: int,
    cursor: int,
    uids: tuple[int, ...] | None = None,
) -> list[MessageInfo]:
    """The answer to ``new_messages_command``, ascending by UID."""
    found: dict[int, MessageInfo] = {}
    allowed = set(uids) if uids is not None else None
    for r in untagged:
        if r.keyword != "FETCH":
            continue
        items = fetch_items(r.values)
        uid = items.get("UID")
        # "cursor:*" includes the highest UID even when it is below the cursor.
        if isinstance(uid, int) and uid >= cursor and (allowed is None or uid in allowed):
            found[uid] = message_info(account, folder, uidvalidity, uid, items)
    return [found[u] for u in sorted(found)]


async def fetch_new(
    conn: ImapClient,
    account: str,
    folder: str,
    uidvalidity: int,
    cursor: int,
    uids: tuple[int, ...] | None = None,
) -> list[MessageInfo]:
    """Metadata of every message with UID >= ``cursor`` (only those of ``uids`` when
    QRESYNC already named them), ascending by UID."""
    cmd = new_messages_command(conn, cursor, uids)
    if cmd is None:
        return []
    untagged, _ = await conn.command(cmd)
    return new_messages(untagged, account, folder, uidvalidity, cursor, uids)


def has_headers(items: dict[str, Value]) -> bool:
    """Whether FETCH data carries the header fields (a pushed new message does; a
    flag change does not)."""
    return any(k.startswith("BODY[HEADER") for k in items)


def message_info(
    account: str, folder: str, uidvalidity: int, uid: int, items: dict[str, Value]
) -> MessageInfo:
    raw = next((v for k, v in items.items() if k.startswith("BODY[HEADER")), b"")
    size = items.get("RFC822.SIZE")
    headers = BytesHeaderParser(policy=default_policy).parsebytes(
        raw if isinstance(raw, bytes) else b""
    )

    def h(name: str) -> str:
        try:
            value = headers.get(name)
            return " ".join(str(value).split()) if value is not None else ""
        except (ValueError, TypeError, IndexError):  # an undecodable header: show it raw
            return ""

    return MessageInfo(
        account,
        folder,
        uidvalidity,
        uid,
        size if isinstance(size, int) else 0,
        h("From"),
        h("To"),
        h("Subject"),
        h("List-Id"),
        h("Date"),
        h("Message-ID"),
    )


async def fetch_whole(conn: ImapClient, uid: int) -> bytes | None:
    cmd = Fetch(conn.next_tag(), _uid_set(uid, uid), ("UID", FetchBody(peek=True)), uid=True)
    return _body(await conn.command(cmd), "BODY[]")


def _body(result: tuple[list[Untagged], object], key: str) -> bytes | None:
    for r in result[0]:
        if r.keyword == "FETCH":
            value = fetch_items(r.values).get(key)
            if isinstance(value, bytes):
                return value
    return None


async def fetch_partial(conn: ImapClient, uid: int, limit: int) -> bytes | None:
    """Headers, then the first ``limit`` bytes of the first text part (BODYSTRUCTURE first)."""
    cmd = Fetch(conn.next_tag(), _uid_set(uid, uid), ("BODYSTRUCTURE",), uid=True)
    untagged, _ = await conn.command(cmd)
    part: tuple[int, ...] = (1,)
    for r in untagged:
        if r.keyword == "FETCH":
            found = first_text_part(fetch_items(r.values).get("BODYSTRUCTURE"))
            part = found if found is not None else (1,)
    head = FetchBody(Section(text="HEADER"), peek=True)
    text = FetchBody(Section(part=part), partial=(0, limit), peek=True)
    result = await conn.command(Fetch(conn.next_tag(), _uid_set(uid, uid), (head, text), uid=True))
    header = _body(result, "BODY[HEADER]")
    if header is None:
        return None
    key = f"BODY[{'.'.join(map(str, part))}]<0>"
    snippet = _body(result, key) or b""
    return header.rstrip(b"\r\n") + b"\r\nX-Pushmail-Partial: yes\r\n\r\n" + snippet


def first_text_part(bs: Value, prefix: tuple[int, ...] = ()) -> tuple[int, ...] | None:
    """The part number of the first ``text/*`` leaf of a BODYSTRUCTURE (RFC 3501 §7.4.2)."""
    if not isinstance(bs, tuple) or not bs:
        return None
    if isinstance(bs[0], tuple):  # multipart: (part)(part)... "subtype" extension-data
        for i, sub in enumerate(_leading_tuples(bs)):
            found = first_text_part(sub, (*prefix, i + 1))
            if found is not None:
                return found
        return None
    kind = bs[0]
    if isinstance(kind, bytes) and kind.lower() == b"text":
        return prefix or (1,)
    return None


def _leading_tuples(bs: tuple[Value, ...]) -> list[tuple[Value, ...]]:
    out: list[tuple[Value, ...]] = []
    for x in bs:
        if not isinstance(x, tuple):
            break
        out.append(x)
    return out


async def leave(conn: ImapClient) -> None:
    """Deselect (the folder was EXAMINEd: CLOSE expunges nothing). The polling probe
    needs this: STATUS on the selected folder may answer from the session's own,
    unsynchronised view (Dovecot does: new mail stays unseen until a NOOP), and RFC
    3501 §6.3.10 advises against it."""
    await conn.command_text("UNSELECT" if "UNSELECT" in conn.capabilities else "CLOSE")


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def maildir_for(download_cfg: Download, account: str, folder: str) -> Path:
    return download_cfg.dir / _UNSAFE.sub("_", account) / _UNSAFE.sub("_", folder)


def _store(path: Path, data: bytes, replace_key: str | None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    md = mailbox.Maildir(path, create=True)
    msg = mailbox.MaildirMessage(data)
    if replace_key is not None and replace_key in md:
        md[replace_key] = msg
        key = replace_key
    else:
        key = md.add(msg)
    # A message added without flags lives in new/ under its key (mailbox.Maildir.add).
    return str(path / "new" / key)


async def download(
    conn: ImapClient, cfg: Download, info: MessageInfo, replace_key: str | None = None
) -> MessageInfo:
    """Fetch by the policy and store in the folder's Maildir; the info gains ``path``."""
    whole = info.size <= cfg.max_size
    data = await (
        fetch_whole(conn, info.uid) if whole else fetch_partial(conn, info.uid, cfg.partial_bytes)
    )
    if data is None:
        return info
    folder = maildir_for(cfg, info.account, info.folder)
    path = await asyncio.to_thread(_store, folder, data, replace_key)
    return replace(info, path=path, partial=not whole)
