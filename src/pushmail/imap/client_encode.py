"""Encoding commands as a client sends them (the push client, and round-trip tests).

The inverse of ``command_table.parse_command``: for every command value the parser can
produce, ``parse_command(encode_command(cmd)) == cmd``. Strings go as atoms where the
grammar allows, quoted where they can, and as literals otherwise: ``{n+}`` with
LITERAL+ (RFC 7888), or ``{n}``, in which case ``encode_command_parts`` gives the
pieces between which the client must wait for the server's ``+``.
"""

from __future__ import annotations

import base64
import re

from pushmail.imap.commands import (
    Append,
    Authenticate,
    Command,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    FetchAtt,
    GetQuota,
    Id,
    ListCmd,
    Login,
    Notify,
    NotifyGroup,
    Rename,
    Search,
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
    Section,
    Select,
    Sort,
    Status,
    StoreFlags,
    Subscribe,
    Thread,
)
from pushmail.imap.commands_metadata import Metadata
from pushmail.imap.encoder import date_time
from pushmail.imap.mutf7 import encode_mutf7
from pushmail.imap.parse_search import CHARSETS

_ASTRING = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f-\xff]+\Z')
_LIST_CHARS = re.compile(rb'[^(){ "\\\x00-\x1f\x7f-\xff]+\Z')
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_QUOTED_MAX = 1000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FLAG_WORDS = {
    ("\\Answered", True): "ANSWERED",
    ("\\Deleted", True): "DELETED",
    ("\\Draft", True): "DRAFT",
    ("\\Flagged", True): "FLAGGED",
    ("\\Seen", True): "SEEN",
    ("\\Recent", True): "RECENT",
    ("\\Answered", False): "UNANSWERED",
    ("\\Deleted", False): "UNDELETED",
    ("\\Draft", False): "UNDRAFT",
    ("\\Flagged", False): "UNFLAGGED",
    ("\\Seen", False): "UNSEEN",
}
_HEADER_WORDS = frozenset({"BCC", "CC", "FROM", "SUBJECT", "TO"})
_STORE_WORDS = {"set": "FLAGS", "add": "+FLAGS", "remove": "-FLAGS"}


class _Writer:
    """Collects the command; each synchronizing literal header ends a part."""

    __slots__ = ("cur", "literal_plus", "parts")

    def __init__(self, literal_plus: bool) -> None:
        self.literal_plus = literal_plus
        self.parts: list[bytes] = []
        self.cur = bytearray()

    def raw(self, data: bytes | str) -> None:
        self.cur += data.encode("ascii") if isinstance(data, str) else data

    def literal(self, data: bytes, binary: bool = False) -> None:
        prefix = b"~" if binary else b""
        if self.literal_plus:
            self.cur += prefix + b"{%d+}\r\n" % len(data) + data
            return
        self.cur += prefix + b"{%d}\r\n" % len(data)
        self.parts.append(bytes(self.cur))
        self.cur = bytearray(data)

    def string(self, data: bytes) -> None:
        """string = quoted / literal"""
        if len(data) <= _QUOTED_MAX and _QUOTABLE.match(data):
            self.cur += b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        else:
            self.literal(data)

    def astring(self, data: bytes) -> None:
        """astring = 1*ASTRING-CHAR / string ; long values go as literals, so that no
        line gets near a server's line cap"""
        if len(data) <= _QUOTED_MAX and _ASTRING.match(data):
            self.cur += data
        else:
            self.string(data)

    def text(self, value: str) -> None:
        self.astring(value.encode("utf-8"))

    def mailbox(self, name: str) -> None:
        self.astring(b"INBOX" if name == "INBOX" else encode_mutf7(name).encode("ascii"))

    def pattern(self, name: str) -> None:
        raw = encode_mutf7(name).encode("ascii")
        if len(raw) <= _QUOTED_MAX and _LIST_CHARS.match(raw):
            self.cur += raw
        else:
            self.string(raw)

    def finish(self) -> list[bytes]:
        self.cur += b"\r\n"
        return [*self.parts, bytes(self.cur)]


def _paren(w: _Writer, words: tuple[str, ...] | list[str]) -> None:
    w.raw("(" + " ".join(words) + ")")


def _search_date(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{int(day)}-{_MONTHS[int(month) - 1]}-{year}"


def _encode_search_key(w: _Writer, key: SearchKey, codec: str) -> None:
    def text(value: str) -> None:
        w.astring(value.encode(codec))

    if isinstance(key, SearchAll | SearchNew | SearchOld):
        w.raw({SearchAll: "ALL", SearchNew: "NEW", SearchOld: "OLD"}[type(key)])
    elif isinstance(key, SearchFlag):
        _encode_search_flag(w, key)
    elif isinstance(key, SearchHeader):
        if key.field in _HEADER_WORDS:
            w.raw(key.field + " ")
        else:
            w.raw("HEADER ")
            text(key.field)
            w.raw(" ")
        text(key.value)
    elif isinstance(key, SearchText):
        w.raw(key.where + " ")
        text(key.value)
    elif isinstance(key, SearchDate):
        prefix = "SENT" if key.sent else "SAVED" if key.saved else ""
        w.raw(prefix + key.op + " " + _search_date(key.date))
    elif isinstance(key, SearchSize):
        w.raw(f"{'LARGER' if key.larger else 'SMALLER'} {key.n}")
    elif isinstance(key, SearchSet):
        w.raw(("UID " if key.uid else "") + key.set.encode())
    elif isinstance(key, SearchModseq):
        w.raw(f"MODSEQ {key.modseq}")
    elif isinstance(key, SearchObjectId):
        w.raw(f"{key.kind} {key.value}")
    elif isinstance(key, SearchWithin):
        w.raw(f"{'OLDER' if key.older else 'YOUNGER'} {key.seconds}")
    else:
        _encode_search_tree(w, key, codec)


def _encode_search_flag(w: _Writer, key: SearchFlag) -> None:
    word = _FLAG_WORDS.get((key.flag, key.present))
    if word is not None:
        w.raw(word)
    elif key.flag == "\\Recent":
        w.raw("NOT RECENT")  # there is no UNRECENT
    elif key.flag.startswith("\\"):
        raise ValueError(f"SEARCH cannot express flag {key.flag}")
    else:
        w.raw(("KEYWORD " if key.present else "UNKEYWORD ") + key.flag)


def _encode_search_tree(w: _Writer, key: SearchNot | SearchOr | SearchAnd, codec: str) -> None:
    if isinstance(key, SearchNot):
        w.raw("NOT ")
        _encode_search_key(w, key.key, codec)
    elif isinstance(key, SearchOr):
        w.raw("OR ")
        _encode_search_key(w, key.left, codec)
        w.raw(" ")
        _encode_search_key(w, key.right, codec)
    else:
        w.raw("(")
        for i, sub in enumerate(key.keys):
            if i:
                w.raw(" ")
            _encode_search_key(w, sub, codec)
        w.raw(")")


def _encode_search(w: _Writer, cmd: Search) -> None:
    if cmd.returns is not None:
        w.raw(" RETURN ")
        _paren(w, cmd.returns)
    if cmd.charset is not None:
        w.raw(" CHARSET ")
        w.astring(cmd.charset.encode("ascii"))
    w.raw(" ")
    _encode_search_key(w, cmd.key, CHARSETS.get(cmd.charset or "UTF-8", "utf-8"))


def _encode_sort(w: _Writer, cmd: Sort | Thread) -> None:
    if isinstance(cmd, Sort):
        if cmd.returns is not None:
            w.raw(" RETURN ")
            _paren(w, cmd.returns)
        w.raw(" (" + " ".join(("REVERSE " if c.reverse else "") + c.key for c in cmd.criteria))
        w.raw(")")
    else:
        w.raw(" " + cmd.algorithm)
    w.raw(" " + cmd.charset + " ")
    _encode_search_key(w, cmd.key, "utf-8")


def _section(w: _Writer, section: Section) -> None:
    w.raw("[" + ".".join(str(p) for p in section.part))
    if section.text is not None:
        w.raw(("." if section.part else "") + section.text)
        if section.fields:
            w.raw(" (")
            for i, name in enumerate(section.fields):
                if i:
                    w.raw(" ")
                w.text(name)
            w.raw(")")
    w.raw("]")


def _fetch_att(w: _Writer, att: FetchAtt) -> None:
    if isinstance(att, str):
        w.raw(att)
        return
    if att.size_only:
        w.raw("BINARY.SIZE")
    else:
        w.raw(("BINARY" if att.binary else "BODY") + (".PEEK" if att.peek else ""))
    _section(w, att.section)
    if att.partial is not None:
        w.raw(f"<{att.partial[0]}.{att.partial[1]}>")


def _encode_fetch(w: _Writer, cmd: Fetch) -> None:
    w.raw(" " + cmd.set.encode() + " (")
    for i, att in enumerate(cmd.items):
        if i:
            w.raw(" ")
        _fetch_att(w, att)
    w.raw(")")
    if cmd.changedsince is not None:
        w.raw(f" (CHANGEDSINCE {cmd.changedsince}" + (" VANISHED)" if cmd.vanished else ")"))


def _encode_store(w: _Writer, cmd: StoreFlags) -> None:
    w.raw(" " + cmd.set.encode() + " ")
    if cmd.unchangedsince is not None:
        w.raw(f"(UNCHANGEDSINCE {cmd.unchangedsince}) ")
    w.raw(_STORE_WORDS[cmd.mode] + (".SILENT " if cmd.silent else " "))
    _paren(w, cmd.flags)


def _encode_select(w: _Writer, cmd: Select) -> None:
    w.raw(" ")
    w.mailbox(cmd.mailbox)
    params = ["CONDSTORE"] if cmd.condstore else []
    q = cmd.qresync
    if q is not None:
        text = f"QRESYNC ({q.uidvalidity} {q.modseq}"
        if q.known_uids is not None:
            text += " " + q.known_uids.encode()
        if q.seq_match is not None:
            text += f" ({q.seq_match[0].encode()} {q.seq_match[1].encode()})"
        params.append(text + ")")
    if params:
        w.raw(" ")
        _paren(w, params)


def _encode_list(w: _Writer, cmd: ListCmd) -> None:
    w.raw(" ")
    if cmd.selection:
        _paren(w, cmd.selection)
        w.raw(" ")
    w.mailbox(cmd.reference)
    w.raw(" ")
    if len(cmd.patterns) == 1:
        w.pattern(cmd.patterns[0])
    else:
        w.raw("(")
        for i, pattern in enumerate(cmd.patterns):
            if i:
                w.raw(" ")
            w.pattern(pattern)
        w.raw(")")
    if cmd.returns or cmd.status_items:
        opts = list(cmd.returns)
        if cmd.status_items:
            opts.append("STATUS (" + " ".join(cmd.status_items) + ")")
        w.raw(" RETURN ")
        _paren(w, opts)


def _encode_append(w: _Writer, cmd: Append) -> None:
    w.raw(" ")
    w.mailbox(cmd.mailbox)
    for m in cmd.messages:  # MULTIAPPEND (RFC 3502): one after another
        if m.flags:
            w.raw(" ")
            _paren(w, m.flags)
        if m.internaldate is not None:
            w.raw(b" " + date_time(m.internaldate.value))
        if not m.parts:
            w.raw(" ")
            w.literal(m.message, binary=b"\x00" in m.message)
            continue
        w.raw(" CATENATE (")  # RFC 4469
        for i, part in enumerate(m.parts):
            w.raw(" " if i else "")
            if isinstance(part, bytes):
                w.raw("TEXT ")
                w.literal(part, binary=b"\x00" in part)
            else:
                w.raw("URL ")
                w.string(part.url.encode("utf-8"))
        w.raw(")")


def _encode_quota(w: _Writer, cmd: GetQuota) -> None:
    w.raw(" ")
    if cmd.kind == "GETQUOTAROOT":
        w.mailbox(cmd.argument)
        return
    w.string(cmd.argument.encode("utf-8"))
    if cmd.kind == "SETQUOTA":
        w.raw(" (" + " ".join(f"{name} {limit}" for name, limit in cmd.limits) + ")")


def _encode_metadata(w: _Writer, cmd: Metadata) -> None:
    if cmd.kind == "GETMETADATA":
        options = ([f"MAXSIZE {cmd.maxsize}"] if cmd.maxsize is not None else []) + (
            [f"DEPTH {cmd.depth}"] if cmd.depth != "0" else []
        )
        if options:
            w.raw(" (" + " ".join(options) + ")")
        w.raw(" ")
        w.mailbox(cmd.mailbox)
        w.raw(" (")
        for i, entry in enumerate(cmd.entries):
            w.raw(" " if i else "")
            w.astring(entry.encode("utf-8"))
        w.raw(")")
        return
    w.raw(" ")
    w.mailbox(cmd.mailbox)
    w.raw(" (")
    for i, (entry, value) in enumerate(cmd.values):
        w.raw(" " if i else "")
        w.astring(entry.encode("utf-8"))
        if value is None:
            w.raw(" NIL")
        elif b"\x00" in value:
            w.raw(" ")
            w.literal(value, binary=True)
        else:
            w.raw(" ")
            w.string(value)
    w.raw(")")


def _encode_id(w: _Writer, cmd: Id) -> None:
    if cmd.params is None:
        w.raw(" NIL")
        return
    w.raw(" (")
    for i, (name, value) in enumerate(cmd.params):
        if i:
            w.raw(" ")
        w.string(name.encode("utf-8"))
        w.raw(" ")
        if value is None:
            w.raw("NIL")
        else:
            w.string(value.encode("utf-8"))
    w.raw(")")


def _encode_args(w: _Writer, cmd: Command) -> None:
    """Everything after the command name."""
    if isinstance(cmd, Authenticate):
        w.raw(" " + cmd.mechanism)
        if cmd.initial_response is not None:
            w.raw(" " + (base64.b64encode(cmd.initial_response).decode() or "="))
    elif isinstance(cmd, Login):
        w.raw(" ")
        w.text(cmd.username)
        w.raw(" ")
        w.text(cmd.password.value)
    elif isinstance(cmd, Delete | Subscribe):
        w.raw(" ")
        w.mailbox(cmd.mailbox)
    elif isinstance(cmd, Rename):
        w.raw(" ")
        w.mailbox(cmd.old)
        w.raw(" ")
        w.mailbox(cmd.new)
    elif isinstance(cmd, Create):
        w.raw(" ")
        w.mailbox(cmd.mailbox)
        if cmd.special_use:
            w.raw(" (USE (" + " ".join(cmd.special_use) + "))")
    elif isinstance(cmd, Status):
        w.raw(" ")
        w.mailbox(cmd.mailbox)
        w.raw(" ")
        _paren(w, cmd.items)
    elif isinstance(cmd, Copy):
        w.raw(" " + cmd.set.encode() + " ")
        w.mailbox(cmd.mailbox)
    else:
        _encode_args2(w, cmd)


def _encode_args2(w: _Writer, cmd: Command) -> None:
    if isinstance(cmd, Select):
        _encode_select(w, cmd)
    elif isinstance(cmd, ListCmd):
        if cmd.lsub:
            w.raw(" ")
            w.mailbox(cmd.reference)
            w.raw(" ")
            w.pattern(cmd.patterns[0])
        else:
            _encode_list(w, cmd)
    elif isinstance(cmd, Append):
        _encode_append(w, cmd)
    elif isinstance(cmd, GetQuota):
        _encode_quota(w, cmd)
    elif isinstance(cmd, Metadata):
        _encode_metadata(w, cmd)
    elif isinstance(cmd, Search):
        _encode_search(w, cmd)
    elif isinstance(cmd, Sort | Thread):
        _encode_sort(w, cmd)
    elif isinstance(cmd, Fetch):
        _encode_fetch(w, cmd)
    elif isinstance(cmd, StoreFlags):
        _encode_store(w, cmd)
    elif isinstance(cmd, Expunge) and cmd.uids is not None:
        w.raw(" " + cmd.uids.encode())
    elif isinstance(cmd, Id):
        _encode_id(w, cmd)
    elif isinstance(cmd, Enable):
        w.raw(" " + " ".join(cmd.capabilities))
    elif isinstance(cmd, Compress):
        w.raw(" " + cmd.mechanism)
    elif isinstance(cmd, Notify):
        _encode_notify(w, cmd)


def _encode_notify(w: _Writer, cmd: Notify) -> None:
    if cmd.groups is None:
        w.raw(" NONE")
        return
    w.raw(" SET STATUS" if cmd.status else " SET")
    for group in cmd.groups:
        w.raw(" (" + group.kind)
        _encode_notify_mailboxes(w, group)
        if not group.events:
            w.raw(" NONE)")
            continue
        for i, event in enumerate(group.events):
            w.raw((" (" if i == 0 else " ") + event)
            if event == "MessageNew" and group.fetch:
                for j, att in enumerate(group.fetch):
                    w.raw(" (" if j == 0 else " ")
                    _fetch_att(w, att)
                w.raw(")")
        w.raw("))")


def _encode_notify_mailboxes(w: _Writer, group: NotifyGroup) -> None:
    if not group.mailboxes:
        return
    w.raw(" (")
    for i, name in enumerate(group.mailboxes):
        if i:
            w.raw(" ")
        w.mailbox(name)
    w.raw(")")


def encode_command_parts(cmd: Command, literal_plus: bool = True) -> list[bytes]:
    """The command as wire bytes, split after each synchronizing literal header:
    the client sends a part, waits for ``+``, sends the next. One part with
    ``literal_plus``."""
    w = _Writer(literal_plus)
    w.raw(cmd.tag + " " + cmd.name)
    _encode_args(w, cmd)
    return w.finish()


def encode_command(cmd: Command, literal_plus: bool = True) -> bytes:
    """The whole command as wire bytes (literals as ``{n+}`` unless told otherwise)."""
    return b"".join(encode_command_parts(cmd, literal_plus))
