"""The connection states and the command table (DESIGN rules 2 and 3).

Which command is legal in which state is data, not code: one row per command as it
appears on the wire (``FETCH`` and ``UID FETCH`` are different rows, as are ``COPY``
and ``MOVE``), each saying where it is allowed (RFC 3501 §6 and the extensions' own
"valid states"), whether it addresses messages by sequence number (while such a
command runs the server must not send EXPUNGE, RFC 3501 §7.4.1), whether the
fragmentizer must switch to raw lines after it (IDLE ``DONE``, SASL responses), and
which state a success leads to.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pushmail.imap.commands import (
    Append,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    Id,
    Idle,
    ListCmd,
    Login,
    Logout,
    Namespace,
    Noop,
    Notify,
    Rename,
    Search,
    Select,
    StartTLS,
    Status,
    Store,
    Subscribe,
    Unselect,
)
from pushmail.imap.errors import ProtocolError


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the command table."""

    name: str  # as on the wire, e.g. "UID FETCH"
    states: frozenset[State]  # where the command is allowed
    uses_seqnums: bool = False  # no EXPUNGE may be sent while it runs
    raw_lines: bool = False  # the client's next lines are not commands (IDLE, SASL)
    on_success: State | None = None  # the state a tagged OK leads to, if it changes


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})  # authenticated-state commands
_AUTH_ONLY = frozenset({State.AUTHENTICATED})  # ENABLE: before any SELECT (RFC 5161)
_SELECTED = frozenset({State.SELECTED})

_ROWS = (
    # RFC 3501 §6.1 any state; ID is valid in any state too (RFC 2971 §3.1).
    CommandSpec("CAPABILITY", _ANY),
    CommandSpec("NOOP", _ANY),
    CommandSpec("LOGOUT", _ANY, on_success=State.LOGOUT),
    CommandSpec("ID", _ANY),
    # §6.2 not authenticated.
    CommandSpec("STARTTLS", _NOT_AUTH),
    CommandSpec("AUTHENTICATE", _NOT_AUTH, raw_lines=True, on_success=State.AUTHENTICATED),
    CommandSpec("LOGIN", _NOT_AUTH, on_success=State.AUTHENTICATED),
    # §6.3 authenticated (and therefore selected), with NAMESPACE, IDLE, COMPRESS.
    CommandSpec("SELECT", _AUTH, on_success=State.SELECTED),
    CommandSpec("EXAMINE", _AUTH, on_success=State.SELECTED),
    CommandSpec("CREATE", _AUTH),
    CommandSpec("DELETE", _AUTH),
    CommandSpec("RENAME", _AUTH),
    CommandSpec("SUBSCRIBE", _AUTH),
    CommandSpec("UNSUBSCRIBE", _AUTH),
    CommandSpec("LIST", _AUTH),
    CommandSpec("LSUB", _AUTH),
    CommandSpec("STATUS", _AUTH),
    CommandSpec("APPEND", _AUTH),
    CommandSpec("NAMESPACE", _AUTH),  # RFC 2342
    CommandSpec("IDLE", _AUTH, raw_lines=True),  # RFC 2177
    CommandSpec("COMPRESS", _AUTH),  # RFC 4978
    CommandSpec("ENABLE", _AUTH_ONLY),  # RFC 5161 §3.1
    CommandSpec("NOTIFY", _AUTH),  # RFC 5465 §3
    # §6.4 selected.
    CommandSpec("CHECK", _SELECTED),
    CommandSpec("CLOSE", _SELECTED, on_success=State.AUTHENTICATED),
    CommandSpec("UNSELECT", _SELECTED, on_success=State.AUTHENTICATED),  # RFC 3691
    CommandSpec("EXPUNGE", _SELECTED),
    CommandSpec("UID EXPUNGE", _SELECTED),  # RFC 4315
    CommandSpec("SEARCH", _SELECTED, uses_seqnums=True),
    CommandSpec("FETCH", _SELECTED, uses_seqnums=True),
    CommandSpec("STORE", _SELECTED, uses_seqnums=True),
    CommandSpec("COPY", _SELECTED, uses_seqnums=True),
    CommandSpec("MOVE", _SELECTED, uses_seqnums=True),  # RFC 6851
    CommandSpec("UID SEARCH", _SELECTED),
    CommandSpec("UID FETCH", _SELECTED),
    CommandSpec("UID STORE", _SELECTED),
    CommandSpec("UID COPY", _SELECTED),
    CommandSpec("UID MOVE", _SELECTED),
)

COMMAND_TABLE: Mapping[str, CommandSpec] = MappingProxyType({s.name: s for s in _ROWS})

# The wire name of a command without variants, by class.
_FIXED_NAMES: Mapping[type, str] = MappingProxyType(
    {
        Capability: "CAPABILITY",
        Noop: "NOOP",
        Logout: "LOGOUT",
        Id: "ID",
        StartTLS: "STARTTLS",
        Authenticate: "AUTHENTICATE",
        Login: "LOGIN",
        Create: "CREATE",
        Delete: "DELETE",
        Rename: "RENAME",
        Status: "STATUS",
        Append: "APPEND",
        Namespace: "NAMESPACE",
        Idle: "IDLE",
        Compress: "COMPRESS",
        Enable: "ENABLE",
        Notify: "NOTIFY",
        Check: "CHECK",
        Close: "CLOSE",
        Unselect: "UNSELECT",
    }
)


def command_name(command: Command) -> str:
    """The wire name of ``command``: its row in ``COMMAND_TABLE``."""
    fixed = _FIXED_NAMES.get(type(command))
    if fixed is not None:
        return fixed
    if isinstance(command, Select):
        return "EXAMINE" if command.readonly else "SELECT"
    if isinstance(command, Subscribe):
        return "SUBSCRIBE" if command.subscribe else "UNSUBSCRIBE"
    if isinstance(command, ListCmd):
        return "LSUB" if command.lsub else "LIST"
    if isinstance(command, Expunge):
        return "EXPUNGE" if command.uids is None else "UID EXPUNGE"
    if isinstance(command, Copy):
        name = "MOVE" if command.move else "COPY"
    elif isinstance(command, Search):
        name = "SEARCH"
    elif isinstance(command, Fetch):
        name = "FETCH"
    elif isinstance(command, Store):
        name = "STORE"
    else:
        raise TypeError(f"not a command: {command!r}")  # a programming error, not input
    return "UID " + name if command.uid else name


def spec_for(command: Command) -> CommandSpec:
    """The table row of ``command``."""
    return COMMAND_TABLE[command_name(command)]


def check_allowed(state: State, command: Command) -> None:
    """Raise ProtocolError unless ``command`` may run in ``state``."""
    spec = spec_for(command)
    if state not in spec.states:
        raise ProtocolError(f"{spec.name}: command not allowed in this state ({state.value})")


def uses_seqnums(command: Command) -> bool:
    """Whether ``command`` addresses messages by sequence number, so that no EXPUNGE
    may be sent while it runs (RFC 3501 §7.4.1)."""
    return spec_for(command).uses_seqnums
