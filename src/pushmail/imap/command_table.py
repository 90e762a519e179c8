"""The command table: one row per command, and everything that asks about a command
asks it (design.md rules 2 and 3; "The command table").

A row says, for one command as it appears on the wire (``FETCH`` and ``UID FETCH``
are two rows, as are ``SELECT`` and ``EXAMINE``, because what they may do differs):

- the parser rule that reads its arguments (the parser is given these rules, so it
  imports nothing of this layer),
- the handler that runs it on the store thread,
- the states in which it is allowed (RFC 3501 §6 and each extension's "valid states"),
- its flags: whether it addresses messages by sequence number, and so forbids
  EXPUNGE responses while it runs (RFC 3501 §7.4.1), whether it reports expunges
  itself, and whether the bytes after its reply belong to another layer.

The parser (``COMMANDS.parse``), the state check (``COMMANDS.check_allowed``) and the
dispatch (``COMMANDS.execute``) all read this one table; adding a command is a row
here, its parser rule and its handler.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pushmail.imap import (
    cmd_append,
    cmd_auth,
    cmd_mailbox,
    cmd_message,
    cmd_metadata,
    cmd_notify,
    cmd_quota,
    cmd_select,
    cmd_sort,
)
from pushmail.imap import commands as c
from pushmail.imap.errors import ImapError, ProtocolError
from pushmail.imap.parse_append import (
    parse_append,
    parse_getquota,
    parse_getquotaroot,
    parse_setquota,
)
from pushmail.imap.parse_fetch import parse_fetch, parse_store
from pushmail.imap.parse_mailbox import (
    parse_create,
    parse_delete,
    parse_list,
    parse_lsub,
    parse_rename,
    parse_select,
    parse_status,
    parse_subscribe,
)
from pushmail.imap.parse_metadata import parse_getmetadata, parse_setmetadata
from pushmail.imap.parse_notify import parse_notify
from pushmail.imap.parse_search import parse_search
from pushmail.imap.parse_sort import parse_sort, parse_thread
from pushmail.imap.parser import (
    CommandParser,
    Rule,
    bare,
    parse_authenticate,
    parse_compress,
    parse_copy,
    parse_enable,
    parse_id,
    parse_login,
    parse_uid_expunge,
)
from pushmail.imap.session import Action, Session, State
from pushmail.imap.store_errors import reply_text, response_code
from pushmail.imap.uidonly import check_uid_only
from pushmail.store.interfaces import Store, StoreError

# A handler takes the row's own command class; the table holds rows of every class.
Handler = Callable[[Session, Any, Store], Action | None]


class Flag(enum.Flag):
    NONE = 0
    SEQNUMS = enum.auto()  # addresses messages by sequence number: no EXPUNGE while it runs
    OWN_EXPUNGES = enum.auto()  # reports EXPUNGE itself (MOVE), so pending ones may follow
    NEW_LAYER = enum.auto()  # after its OK the bytes belong to another layer: read none ahead


@dataclass(frozen=True, slots=True)
class Row:
    """One command: how it is read, what runs it, where it is allowed."""

    name: str  # as on the wire, e.g. "UID FETCH"; the command's own ``name``
    rule: Rule
    handler: Handler
    states: frozenset[State]
    flags: Flag = Flag.NONE

    def expunges_allowed(self) -> bool:
        """Whether the refresh after this command may report expunges."""
        return Flag.SEQNUMS not in self.flags or Flag.OWN_EXPUNGES in self.flags


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})  # authenticated-state commands
_AUTH_ONLY = frozenset({State.AUTHENTICATED})  # ENABLE: before any SELECT (RFC 5161)
_SELECTED = frozenset({State.SELECTED})
_SEQ = Flag.SEQNUMS
_LAYER = Flag.NEW_LAYER

# The commands that read the selected view's UID array (``SelectedView.load``).
_USE_THE_MAP = (c.Fetch, c.StoreFlags, c.Copy, c.Search, c.Sort, c.Thread, c.Expunge)

_ROWS = (
    # RFC 3501 §6.1 any state; ID is valid in any state too (RFC 2971 §3.1).
    Row("CAPABILITY", bare(c.Capability), cmd_auth.capability, _ANY),
    Row("NOOP", bare(c.Noop), cmd_auth.noop, _ANY),
    Row("LOGOUT", bare(c.Logout), cmd_auth.logout, _ANY),
    Row("ID", parse_id, cmd_auth.id_, _ANY),
    # §6.2 not authenticated.
    Row("STARTTLS", bare(c.StartTLS), cmd_auth.starttls, _NOT_AUTH, _LAYER),
    Row("AUTHENTICATE", parse_authenticate, cmd_auth.authenticate, _NOT_AUTH),
    Row("LOGIN", parse_login, cmd_auth.login, _NOT_AUTH),
    # §6.3 authenticated (and therefore selected), with NAMESPACE, IDLE, COMPRESS.
    Row("SELECT", lambda r, t: parse_select(r, t, readonly=False), cmd_select.select, _AUTH),
    Row("EXAMINE", lambda r, t: parse_select(r, t, readonly=True), cmd_select.select, _AUTH),
    Row("CREATE", parse_create, cmd_mailbox.create, _AUTH),
    Row("DELETE", parse_delete, cmd_mailbox.delete, _AUTH),
    Row("RENAME", parse_rename, cmd_mailbox.rename, _AUTH),
    Row("SUBSCRIBE", lambda r, t: parse_subscribe(r, t, subscribe=True),
        cmd_mailbox.subscribe, _AUTH),
    Row("UNSUBSCRIBE", lambda r, t: parse_subscribe(r, t, subscribe=False),
        cmd_mailbox.subscribe, _AUTH),
    Row("LIST", parse_list, cmd_mailbox.list_, _AUTH),
    Row("LSUB", parse_lsub, cmd_mailbox.list_, _AUTH),
    Row("STATUS", parse_status, cmd_mailbox.status, _AUTH),
    Row("APPEND", parse_append, cmd_append.append, _AUTH),  # + RFC 3502, RFC 4469
    Row("GETQUOTA", parse_getquota, cmd_quota.quota, _AUTH),  # RFC 9208
    Row("GETQUOTAROOT", parse_getquotaroot, cmd_quota.quota, _AUTH),
    Row("SETQUOTA", parse_setquota, cmd_quota.quota, _AUTH),
    Row("GETMETADATA", parse_getmetadata, cmd_metadata.metadata, _AUTH),  # RFC 5464
    Row("SETMETADATA", parse_setmetadata, cmd_metadata.metadata, _AUTH),
    Row("NAMESPACE", bare(c.Namespace), cmd_auth.namespace, _AUTH),  # RFC 2342
    Row("IDLE", bare(c.Idle), cmd_auth.idle, _AUTH),  # RFC 2177
    Row("COMPRESS", parse_compress, cmd_auth.compress, _AUTH, _LAYER),  # RFC 4978
    Row("ENABLE", parse_enable, cmd_auth.enable, _AUTH_ONLY),  # RFC 5161 §3.1
    Row("NOTIFY", parse_notify, cmd_notify.notify, _AUTH),  # RFC 5465 §3
    # §6.4 selected.
    Row("CHECK", bare(c.Check), cmd_select.check, _SELECTED),
    Row("CLOSE", bare(c.Close), cmd_select.close, _SELECTED),
    Row("UNSELECT", bare(c.Unselect), cmd_select.unselect, _SELECTED),  # RFC 3691
    Row("EXPUNGE", bare(c.Expunge), cmd_select.expunge, _SELECTED),
    Row("UID EXPUNGE", parse_uid_expunge, cmd_select.expunge, _SELECTED),  # RFC 4315
    Row("SEARCH", lambda r, t: parse_search(r, t, uid=False), cmd_message.search, _SELECTED,
        _SEQ),
    Row("FETCH", lambda r, t: parse_fetch(r, t, uid=False), cmd_message.fetch, _SELECTED, _SEQ),
    Row("STORE", lambda r, t: parse_store(r, t, uid=False), cmd_message.store_, _SELECTED,
        _SEQ),
    Row("COPY", lambda r, t: parse_copy(r, t, uid=False, move=False), cmd_message.copy,
        _SELECTED, _SEQ),
    Row("MOVE", lambda r, t: parse_copy(r, t, uid=False, move=True), cmd_message.copy,
        _SELECTED, _SEQ | Flag.OWN_EXPUNGES),  # RFC 6851
    Row("UID SEARCH", lambda r, t: parse_search(r, t, uid=True), cmd_message.search,
        _SELECTED),
    Row("UID FETCH", lambda r, t: parse_fetch(r, t, uid=True), cmd_message.fetch, _SELECTED),
    # RFC 5256 (with RFC 5957 keys and RFC 5267 RETURN options).
    Row("SORT", lambda r, t: parse_sort(r, t, uid=False), cmd_sort.sort, _SELECTED, _SEQ),
    Row("UID SORT", lambda r, t: parse_sort(r, t, uid=True), cmd_sort.sort, _SELECTED),
    Row("THREAD", lambda r, t: parse_thread(r, t, uid=False), cmd_sort.thread, _SELECTED, _SEQ),
    Row("UID THREAD", lambda r, t: parse_thread(r, t, uid=True), cmd_sort.thread, _SELECTED),
    Row("UID STORE", lambda r, t: parse_store(r, t, uid=True), cmd_message.store_, _SELECTED),
    Row("UID COPY", lambda r, t: parse_copy(r, t, uid=True, move=False), cmd_message.copy,
        _SELECTED),
    Row("UID MOVE", lambda r, t: parse_copy(r, t, uid=True, move=True), cmd_message.copy,
        _SELECTED),
)


class CommandTable:
    """The rows by name, and the three questions asked of them: how is this read,
    may it run now, and what runs it."""

    __slots__ = ("parser", "rows")

    def __init__(self, rows: Iterable[Row]) -> None:
        by_name: dict[str, Row] = {}
        for row in rows:
            if row.name in by_name:
                raise ValueError(f"two rows for {row.name}")  # a programming error
            by_name[row.name] = row
        self.rows: Mapping[str, Row] = MappingProxyType(by_name)
        self.parser = CommandParser(MappingProxyType({n: r.rule for n, r in by_name.items()}))

    def parse(self, data: bytes) -> c.Command:
        """One complete command, CRLF included, into its typed form
        (``CommandParser.parse``: ``ProtocolError`` for anything invalid)."""
        return self.parser.parse(data)

    def row_of(self, command: c.Command) -> Row:
        return self.rows[command.name]

    def check_allowed(self, state: State, command: c.Command) -> Row:
        """``command``'s row; ProtocolError unless it may run in ``state``."""
        row = self.rows[command.name]
        if state not in row.states:
            raise ProtocolError(f"{row.name}: command not allowed in this state ({state.value})")
        return row

    def execute(self, session: Session, command: c.Command, store: Store) -> Action | None:
        """Run one (already state-checked) command; its errors become tagged replies.

        A store error is reported as ``NO`` with its text: it never ends the session.
        """
        row = self.rows[command.name]
        try:
            if "UIDONLY" in session.enabled:  # RFC 9586 §3: BAD [UIDREQUIRED]
                check_uid_only(command, Flag.SEQNUMS in row.flags)
            if session.view is not None and isinstance(command, _USE_THE_MAP):
                session.view.load(store)  # a UIDONLY view's map, let go between commands
            return row.handler(session, command, store)
        except ImapError as err:
            session.tagged(command.tag, err.status, err.text, err.code)
        except StoreError as err:
            session.tagged(command.tag, "NO", reply_text(err), response_code(err))
        return None


COMMANDS = CommandTable(_ROWS)
parse_command = COMMANDS.parse
check_allowed = COMMANDS.check_allowed
