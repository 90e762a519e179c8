"""One IMAP connection's logic, free of sockets.

The driver (``net/imap_conn.py``) parses a command, asks the command table
(``command_table.py``) whether it is allowed in ``Session.state``, and runs it with
``handlers.run_command`` on the store thread. Handlers append
encoded response lines to ``Session.out``; the driver writes them. A handler that needs
the driver to do something (TLS, IDLE, a password check off the store thread) returns
an ``Action``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap.encoder import Tagged, Untagged
from pushmail.imap.errors import CommandFailed
from pushmail.imap.mutf7 import InvalidName
from pushmail.imap.notify import NotifyState
from pushmail.imap.selected import SelectedView
from pushmail.store.interfaces import Mailbox, Store, User


class State(enum.Enum):
    """The connection states of RFC 3501 §3; which command each allows is the
    command table's ``states`` column."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ActionKind = Literal["starttls", "idle", "logout", "verify", "sasl", "compress", "notify"]


@dataclass(frozen=True, slots=True)
class Action:
    """Something only the driver can do, asked for by a handler."""

    kind: ActionKind
    tag: str = ""
    user: User | None = None
    password: str = field(default="", repr=False)
    account: str = ""  # the account name tried (for limits and the security log)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What every session of a server shares."""

    hostname: str = "localhost"
    tls_available: bool = True
    version: str = "0.1.0"
    default_domain: str | None = None  # for bare login names (auth/names.py)
    # Limits on a user's mailboxes (``config.Limits``, issue 15 item 10).
    max_mailbox_name: int = 255  # bytes of a name (UTF-8), hierarchy included
    max_mailbox_depth: int = 16  # levels of hierarchy ("a/b/c" is 3)
    max_mailboxes: int = 1000  # mailboxes per user, INBOX included
    # Bytes one APPEND may build (CATENATE URL parts copy stored mail, which the
    # command's own literal cap does not bound): ``limits.max_literal``.
    max_append: int = 50 * 1024 * 1024


BASE_CAPS = (
    "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE "
    "CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC "
    "ESEARCH SEARCHRES STATUS=SIZE BINARY NOTIFY PREVIEW OBJECTID SAVEDATE "
    "SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESORT WITHIN "
    "QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE MULTIAPPEND CATENATE METADATA UIDONLY"
)


class Session:
    """State of one connection. Runs only on the store thread while a command
    executes; the driver touches it only between commands."""

    __slots__ = (
        "auth_failures",
        "compressed",
        "enabled",
        "events",
        "loopback",
        "notify",
        "out",
        "saved_search",
        "secure",
        "server",
        "state",
        "user",
        "view",
    )

    def __init__(self, server: ServerInfo, secure: bool, loopback: bool) -> None:
        self.server = server
        self.secure = secure
        self.loopback = loopback
        self.state = State.NOT_AUTHENTICATED
        self.user: User | None = None
        self.view: SelectedView | None = None
        self.out: list[bytes] = []
        self.events: list[MailboxChanged] = []  # published by the driver after the command
        self.enabled: set[str] = set()
        self.saved_search: tuple[int, ...] = ()
        self.auth_failures = 0
        self.notify: NotifyState | None = None  # NOTIFY SET in force (RFC 5465)
        self.compressed = False  # COMPRESS=DEFLATE is active (RFC 4978)

    # -- output -----------------------------------------------------------------
    def untagged(self, data: bytes) -> None:
        self.out.append(Untagged(data).encode())

    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        self.out.append(Tagged(tag, status, text, code).encode())

    def take_output(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data

    # -- capabilities -----------------------------------------------------------
    @property
    def plaintext_ok(self) -> bool:
        """Passwords may cross this connection: TLS, or a loopback peer."""
        return self.secure or self.loopback

    def capabilities(self) -> str:
        caps = BASE_CAPS
        if self.state is State.NOT_AUTHENTICATED:
            if not self.secure and self.server.tls_available:
                caps += " STARTTLS"
            caps += " AUTH=PLAIN" if self.plaintext_ok else " LOGINDISABLED"
        elif not self.compressed:
            caps += " COMPRESS=DEFLATE"
        return caps

    def greeting(self) -> bytes:
        return Untagged(f"OK [CAPABILITY {self.capabilities()}] pushmail ready".encode()).encode()

    @property
    def rev2(self) -> bool:
        """``ENABLE IMAP4rev2`` was given (RFC 9051 §6.3.1): rev2 behaviour."""
        return "IMAP4REV2" in self.enabled

    # -- execution --------------------------------------------------------------
    def condstore_command(self) -> None:
        """A CONDSTORE enabling command ran (RFC 7162 §3.1). The first one with a
        mailbox selected reports that mailbox's HIGHESTMODSEQ (§3.1, example 5),
        the point from which the client's MODSEQ cache is right; from now on every
        unsolicited FETCH carries MODSEQ. While an expunge is held back the value
        stays below it (§3.2, ``SelectedView.reported_modseq``)."""
        if "CONDSTORE" not in self.enabled and self.view is not None:
            self.untagged(b"OK [HIGHESTMODSEQ %d] highest" % self.view.reported_modseq)
        self.enabled.add("CONDSTORE")
        if self.view is not None:
            self.view.condstore = True

    def ok(self, tag: str, text: str, code: str | None = None) -> None:
        self.tagged(tag, "OK", text, code)

    def require_user(self) -> User:
        if self.user is None:
            raise CommandFailed("not authenticated")
        return self.user

    def require_view(self) -> SelectedView:
        if self.view is None:
            raise CommandFailed("no mailbox selected")
        return self.view

    def mailbox(self, store: Store, name: str, trycreate: bool = False) -> Mailbox:
        if isinstance(name, InvalidName):  # no mailbox has it, and none may
            raise CommandFailed("mailbox name is not valid modified UTF-7", "NONEXISTENT")
        mbox = store.get_mailbox(self.require_user().id, name)
        if mbox is None:
            raise CommandFailed(
                f"no mailbox named {name!r}", "TRYCREATE" if trycreate else "NONEXISTENT"
            )
        return mbox

    def login_succeeded(self, user: User) -> None:
        self.user = user
        self.state = State.AUTHENTICATED
