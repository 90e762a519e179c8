"""One IMAP connection's protocol state, free of I/O (sans-IO, like h11's ``Connection``).

The driver (``net/imap_conn.py``) hands the machine the bytes it read
(``receive_data``) and then carries out, in order, the effects ``next_effect`` returns
until it returns None. An effect is either ``bytes`` (write them: the common case, so
it costs no object) or one of the small classes below (run a command on the store,
check a password, start TLS or COMPRESS, join or leave the idle hub, log a security
event, close). When the driver has done what an effect asked, it says so
(``command_done``, ``login_done``, ``sasl_done``), and the machine queues what follows.
Until then the machine hands out no further command: a client's pipelined commands
run one at a time, in order.

The machine owns the modes (command, idle, sasl, closed), the end of IDLE (``DONE``),
the SASL exchange, the sequencing of STARTTLS and COMPRESS (after them no byte read
ahead in plaintext is used), the bad-command count, and the protocol's fixed texts
(greeting, continuations, BYEs, the keepalive), which hibernation uses too.

It imports nothing of ``net/`` and no I/O module, so ``tests/imap`` drives it
without a socket.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import TYPE_CHECKING, Literal

from pushmail.imap import cmd_auth
from pushmail.imap import commands as c
from pushmail.imap.command_table import COMMANDS, Flag
from pushmail.imap.errors import ImapError
from pushmail.imap.fragmentizer import (
    CommandReady,
    FragCaps,
    FragEvent,
    Fragmentizer,
    LineTooLong,
    LiteralTooBig,
    NeedContinuation,
)
from pushmail.imap.parser import parse_tag
from pushmail.imap.session import Action, ServerInfo, Session, State
from pushmail.imap.store_errors import reply_text, response_code
from pushmail.store.interfaces import Store, StoreError

if TYPE_CHECKING:
    from pushmail.config import Limits
    from pushmail.imap.selected import SelectedView
    from pushmail.store.interfaces import User

Mode = Literal["command", "idle", "sasl", "closed"]

# -- the protocol's fixed texts --------------------------------------------------
CONTINUE_LITERAL = b"+ Ready for literal data\r\n"
CONTINUE_IDLE = b"+ idling\r\n"
CONTINUE_SASL = b"+ \r\n"
KEEPALIVE = b"* OK Still here\r\n"
BYE_AUTOLOGOUT = b"* BYE autologout; idle for too long\r\n"
BYE_NO_LOGIN = b"* BYE no login in time\r\n"
BYE_SHUTDOWN = b"* BYE server shutting down\r\n"
BYE_PER_ADDRESS = b"* BYE too many connections from your address\r\n"
BYE_TOO_MANY = b"* BYE too many connections, try again later\r\n"
BYE_BAD_COMMANDS = b"* BYE too many bad commands\r\n"
BYE_FAILED_LOGINS = b"* BYE too many failed logins\r\n"
BYE_INTERNAL = b"* BYE internal server error\r\n"


# -- effects other than a write ----------------------------------------------------
class RunCommand:
    """Run ``cmd`` on the store thread (``handlers.run_command``), then call
    ``command_done``. ``new_layer``: read nothing more meanwhile (STARTTLS,
    COMPRESS: the bytes after the reply belong to another layer). ``login``: a
    LOGIN/AUTHENTICATE, which the guessing limits may refuse unrun (``login_done``)."""

    __slots__ = ("cmd", "login", "new_layer")

    def __init__(self, cmd: c.Command, new_layer: bool, login: bool) -> None:
        self.cmd, self.new_layer, self.login = cmd, new_layer, login


class VerifyPassword:
    """Check the password of ``action`` (limits, cache, hashing threads), then call
    ``login_done``."""

    __slots__ = ("action",)

    def __init__(self, action: Action) -> None:
        self.action = action


class SaslStep:
    """Run ``sasl_response`` on the store thread with this client line, then call
    ``sasl_done`` with its result."""

    __slots__ = ("line", "tag")

    def __init__(self, tag: str, line: bytes) -> None:
        self.tag, self.line = tag, line


class Close:
    """Write ``farewell`` (may be empty) and close the connection."""

    __slots__ = ("farewell",)

    def __init__(self, farewell: bytes) -> None:
        self.farewell = farewell


class Report:
    """A security-log event (``seclog.report``) with its fields."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, **fields: str | int) -> None:
        self.event, self.fields = event, fields


class Signal:
    """An effect with no data; the instances below are the only ones."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


START_TLS = Signal("start-tls")  # put TLS under the connection (no plaintext after)
START_COMPRESS = Signal("start-compress")  # put DEFLATE under the connection
WATCH = Signal("watch")  # IDLE began: join the idle hub (before "+ idling")
UNWATCH = Signal("unwatch")  # IDLE ended: leave the idle hub
NOTIFY = Signal("notify")  # NOTIFY SET/NONE ran: follow the user's events, or stop
LOGGED_IN = Signal("logged-in")  # no longer a pre-login connection (caps)

Effect = bytes | RunCommand | VerifyPassword | SaslStep | Close | Report | Signal

_CLOSED_CAPS = FragCaps(0, 0)
_LOGINS = (c.Login, c.Authenticate)  # a tuple: ``A | B`` would be built at every call


@functools.lru_cache(maxsize=16)
def frag_caps(limits: Limits, logged_in: bool) -> FragCaps:
    """The fragmentizer's caps for a state, one shared object per (limits, state).

    Before login a client can only log in, ask for capabilities, start TLS and the
    like: a few KB is plenty, and it is all an unauthenticated peer may make us hold
    (issue 15 item 1). After it, one command is capped at ``max_command`` in all,
    except an APPEND, which carries a message of up to ``max_literal``."""
    if not logged_in:
        small = min(limits.prelogin_max_command, limits.max_line)
        return FragCaps(small, small, small, None)
    return FragCaps(
        limits.max_line,
        limits.max_literal,
        limits.max_command,
        limits.max_literal + limits.max_line,
    )


def sasl_job(session: Session, tag: str, line: bytes, store: Store) -> Action | None:
    """On the store thread: one SASL response; errors become the tagged reply."""
    try:
        return cmd_auth.sasl_response(session, tag, line, store)
    except ImapError as err:
        session.tagged(tag, err.status, err.text, err.code)
    except StoreError as err:  # e.g. the database is down: NO [UNAVAILABLE]
        session.tagged(tag, "NO", reply_text(err), response_code(err))
    return None


class ConnectionMachine:
    """The protocol state of one connection: bytes in, effects out."""

    __slots__ = (
        "_bad",
        "_frag",
        "_limits",
                "_sasl_tag",
        "_waiting",
        "idle_tag",
        "mode",
        "pending",
        "session",
    )

    def __init__(
        self, info: ServerInfo, limits: Limits, secure: bool, loopback: bool = False
    ) -> None:
        self.session = Session(info, secure, loopback)
        self.mode: Mode = "command"
        self.idle_tag = ""
        self._limits = limits
        self._frag = Fragmentizer(caps=frag_caps(limits, False))
        # Effects decided on and not yet handed out: ``next_effect`` and ``queued`` take
        # from it; a driver may also pop it directly (one call less per effect).
        self.pending: deque[Effect] = deque()
        self._waiting = False  # an effect's outcome is awaited: hand out no command
        self._bad = 0
        self._sasl_tag = ""

    # -- input ------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.mode != "closed":
            self._frag.feed(data)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as a command."""
        return self._frag.buffered

    @property
    def waiting(self) -> bool:
        """An effect's outcome (command, password, SASL step) is awaited."""
        return self._waiting

    def next_effect(self) -> Effect | None:
        """What the driver does next; None: nothing until more input (or, while an
        outcome is awaited, until it is reported)."""
        q = self.pending
        if q:
            return q.popleft()
        while not (self._waiting or self.mode == "closed"):
            event = self._frag.next_event()
            if event is None:
                return None
            self._on_event(event)
            if q:
                return q.popleft()
        return None

    def queued(self) -> Effect | None:
        """The next effect already decided on, without reading another command:
        what a reported outcome led to."""
        return self.pending.popleft() if self.pending else None

    def _on_event(self, event: FragEvent) -> None:
        if isinstance(event, CommandReady):
            if self.mode == "command":
                self._command(event.data)
            elif self.mode == "idle":
                self._end_idle(event.data)
            else:
                self._sasl_line(event.data)
        elif isinstance(event, NeedContinuation):
            self.pending.append(CONTINUE_LITERAL)
        elif isinstance(event, LineTooLong) and self.mode == "sasl":
            # An over-long SASL response ends the exchange (RFC 3501 §6.2.2 lets the
            # server refuse it with BAD): the next line is a command again.
            self._set_mode("command")
            self._bad_input(self._sasl_tag, "SASL response too long", "TOOBIG")
        elif isinstance(event, LineTooLong):
            self._bad_input(event.tag, "line too long", "TOOBIG")
        elif isinstance(event, LiteralTooBig):
            what = "command" if event.total else f"literal of {event.size} octets"
            self.pending.append(Report("command-too-big", size=event.size))
            self._bad_input(event.tag, f"{what} is too big", "TOOBIG")

    def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self._frag.raw_lines = mode in ("idle", "sasl")

    def _bad_input(self, tag: str | None, text: str, code: str | None = None) -> None:
        self._bad += 1
        c_ = f"[{code}] " if code else ""
        self.pending.append(f"{tag or '*'} BAD {c_}{text}\r\n".encode())
        if self._bad >= self._limits.max_bad_commands:
            self.pending.append(Report("bad-commands"))
            self._close(BYE_BAD_COMMANDS)

    def _close(self, farewell: bytes) -> None:
        self.pending.append(Close(farewell))
        self.mode = "closed"  # nothing more is read; the driver closes

    def _command(self, data: bytes) -> None:
        try:
            cmd = COMMANDS.parse(data)
            row = COMMANDS.check_allowed(self.session.state, cmd)
        except ImapError as err:
            self._bad_input(parse_tag(data), err.text, err.code)
            return
        self._bad = 0
        self._waiting = True
        self.pending.append(RunCommand(cmd, Flag.NEW_LAYER in row.flags, isinstance(cmd, _LOGINS)))

    # -- outcomes the driver reports ------------------------------------------------
    def command_done(self, action: Action | None, out: bytes) -> None:
        """The command of the last ``RunCommand`` ran: ``out`` is its output."""
        self._waiting = False
        if self.mode == "closed":  # closed while it ran: nothing follows
            return
        q = self.pending
        if action is None:  # most commands: just their output
            if out:
                q.append(out)
            return
        kind = action.kind
        if kind == "notify":
            q.append(NOTIFY)  # before the OK: no hint may fall between OK and listening
        if out:
            q.append(out)
        if kind == "notify":
            return
        if kind == "verify":
            self._waiting = True
            q.append(VerifyPassword(action))
        elif kind == "logout":
            self._close(b"")
        elif kind == "starttls":
            # Anything the client sent after STARTTLS in plaintext is dropped (RFC 3501
            # §6.2.1, and the command-injection attacks of CVE-2011-0411 style).
            self._frag = Fragmentizer(caps=frag_caps(self._limits, False))
            q.append(START_TLS)
        elif kind == "idle":
            self.idle_tag = action.tag
            self._set_mode("idle")
            q.append(WATCH)  # before "+": a hint right after the client sees it is not lost
            q.append(CONTINUE_IDLE)
        elif kind == "sasl":
            self._sasl_tag = action.tag
            self._set_mode("sasl")
            q.append(CONTINUE_SASL)
        elif kind == "compress":
            q.append(START_COMPRESS)

    def login_done(self, action: Action, ok: bool | None) -> None:
        """The password of a ``VerifyPassword`` (or a LOGIN refused unchecked, None)."""
        self._waiting = False
        if self.mode == "closed":
            return
        s = self.session
        cmd_auth.finish_login(s, action, ok)
        if ok:
            self._frag.caps = frag_caps(self._limits, True)
            self.pending.append(LOGGED_IN)
        out = s.take_output()
        if out:
            self.pending.append(out)
        if s.auth_failures >= self._limits.max_auth_failures:
            self._close(BYE_FAILED_LOGINS)

    def _sasl_line(self, line: bytes) -> None:
        self._set_mode("command")
        self._waiting = True
        self.pending.append(SaslStep(self._sasl_tag, line))

    def run_sasl(self, step: SaslStep, store: Store) -> Action | None:
        """On the store thread: the SASL response of ``step``."""
        return sasl_job(self.session, step.tag, step.line, store)

    def sasl_done(self, action: Action | None) -> None:
        """``run_sasl``'s result: a password to check, or the exchange is over."""
        out = self.session.take_output()
        if out:
            self.pending.append(out)
        if action is not None:
            self.pending.append(VerifyPassword(action))
        else:
            self._waiting = False

    # -- IDLE -------------------------------------------------------------------
    def _end_idle(self, line: bytes) -> None:
        self.pending.append(UNWATCH)
        self._set_mode("command")
        if line.rstrip(b"\r\n").upper() == b"DONE":
            self.pending.append(f"{self.idle_tag} OK IDLE terminated\r\n".encode())
        else:
            self._bad_input(self.idle_tag, "expected DONE")

    def resume_idle(self, tag: str, user: User, view: SelectedView, loopback: bool) -> None:
        """Become the session a hibernated record describes, still in IDLE."""
        s = self.session
        s.user, s.view, s.loopback = user, view, loopback
        s.state = State.SELECTED
        flags = (
            ("CONDSTORE", view.condstore),
            ("QRESYNC", view.qresync),
            ("IMAP4REV2", view.rev2),
            ("UIDONLY", view.uidonly),
        )
        s.enabled.update(name for name, on in flags if on)
        self.idle_tag = tag
        self._frag.caps = frag_caps(self._limits, True)
        self._set_mode("idle")

    @property
    def may_sleep(self) -> bool:
        """In IDLE with no state a hibernation record cannot hold (NOTIFY, COMPRESS)."""
        s = self.session
        return self.mode == "idle" and s.notify is None and not s.compressed

    def keepalive(self) -> bytes:
        """What an idling client gets now and then (nothing outside IDLE)."""
        return KEEPALIVE if self.mode == "idle" else b""

    # -- the end ----------------------------------------------------------------
    def close(self) -> None:
        """The driver closes (or lost) the connection: nothing more is read, and the
        input buffer is let go."""
        self.mode = "closed"
        self.pending.clear()
        if self._frag.caps is not _CLOSED_CAPS:  # close, then connection_lost: once
            self._frag = Fragmentizer(caps=_CLOSED_CAPS)

    def greeting(self) -> bytes:
        return self.session.greeting()
