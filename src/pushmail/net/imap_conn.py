"""The thin driver between a socket and the sans-IO IMAP core (design.md rule 8).

One ``ImapConnection`` (an ``asyncio.Protocol``, no task of its own) per client. Bytes
go into the fragmentizer; each complete command is parsed, state-checked, and run on
the store thread; the session's output is written back. While a command runs, reading
is paused, so a client cannot pile up work. An idling connection holds no task and
no buffer: it waits in the ``IdleHub`` until a hint wakes it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
import time
from collections.abc import Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from pushmail import seclog
from pushmail.auth.cache import CredentialCache
from pushmail.auth.guard import LoginGuard
from pushmail.auth.passwords import cheap_to_verify, verify_password
from pushmail.config import Limits
from pushmail.events.interfaces import MailboxChanged, Publisher
from pushmail.imap import cmd_auth, cmd_notify, handlers
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
from pushmail.imap.notify import PendingHints
from pushmail.imap.parser import parse_tag
from pushmail.imap.session import Action, ServerInfo, Session, State
from pushmail.imap.store_errors import reply_text, response_code
from pushmail.metrics import wakeup
from pushmail.metrics.series import COMMAND_SECONDS, CONNECTS
from pushmail.net.idle_hub import IdleHub
from pushmail.transport.compress import start_compression
from pushmail.transport.conncap import ConnectionGate, peer_host
from pushmail.transport.tls_layer import TlsLayer

if TYPE_CHECKING:
    from pushmail.imap.selected import SelectedView
    from pushmail.net.hibernate import Hibernator
    from pushmail.store.interfaces import User
from pushmail.store.interfaces import Store, StoreError, StoreUnavailable
from pushmail.threads.store_runner import StoreRunner
from pushmail.transport.small_reads import SmallReads

log = logging.getLogger("pushmail.imap")

Mode = Literal["command", "idle", "sasl", "closed"]
# A password hash to check against when the user does not exist, so that a missing
# user takes as long to refuse as a wrong password.
_DUMMY_HASH = "{PLAIN}x"
_PAUSE_ABOVE = 64 * 1024  # bytes buffered while a command runs before reading pauses
# asyncio's transports call ``pause_writing`` above 64 KiB unsent (their default high
# water mark) and ``resume_writing`` once below 16 KiB. Output backpressure waits
# for that ``resume_writing``, so its threshold may not be below the mark.
_MIN_MAX_OUTPUT = 64 * 1024


@dataclass(slots=True)
class ImapContext:
    """Everything the connections of one listener share."""

    info: ServerInfo
    runner: StoreRunner
    hub: IdleHub
    publisher: Publisher
    limits: Limits
    tls: ssl.SSLContext | None
    auth_pool: Executor
    connections: set[ImapConnection]
    dummy_hash: str = _DUMMY_HASH
    hibernator: Hibernator | None = None  # set by the server once the loop runs
    gate: ConnectionGate | None = None  # connection caps (net/conncap.py); None: none
    credentials: CredentialCache = field(default_factory=CredentialCache)
    guard: LoginGuard = field(default_factory=LoginGuard)  # password-guessing limits


_CLOSED_CAPS = FragCaps(0, 0)


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


def _is_loopback(peer: object) -> bool:
    if isinstance(peer, tuple) and peer:
        return _is_loopback_host(str(peer[0]))
    return isinstance(peer, str)  # a Unix socket


@functools.lru_cache(maxsize=4096)
def _is_loopback_host(host: str) -> bool:
    """Remembered per address: parsing one was 3% of a connect storm's server time,
    and clients reconnect from the same few addresses."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapConnection(SmallReads):
    __slots__ = (
        "_bad",
        "_ctx",
        "_eof",
        "_frag",
        "_idle_tag",
        "_mode",
        "_notify_pending",
        "_paused",
        "_running",
        "_sasl_tag",
        "_transport",
        "_upgrading",
        "_wake_again",
        "_watching",
        "last_activity",
        "last_write",
        "session",
    )

    def __init__(self, ctx: ImapContext, secure: bool) -> None:
        self._ctx = ctx
        self._frag = Fragmentizer(caps=frag_caps(ctx.limits, False))
        self._transport: asyncio.Transport | None = None
        self._upgrading = False  # STARTTLS: the next connection_made is the TLS layer
        self._mode: Mode = "command"
        self._running = False  # a command or refresh is on the store thread
        self._wake_again = False
        self._paused = False
        self._eof = False  # the client half-closed while commands were still to answer
        self._bad = 0
        self._idle_tag = ""
        self._sasl_tag = ""
        self._watching: tuple[int, int] | None = None
        # NOTIFY (RFC 5465): hints not yet reported; None while not watching the user.
        self._notify_pending: PendingHints | None = None
        self.session = Session(ctx.info, secure, loopback=False)
        self.last_activity = self.last_write = time.monotonic()

    # -- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.session.loopback = _is_loopback(transport.get_extra_info("peername"))
        self._ctx.connections.add(self)
        if self._upgrading:  # STARTTLS done: same session, now over TLS
            self._upgrading = False
            self.session.secure = True
            self._paused = False
            return
        if self._mode == "idle":  # resumed from hibernation: no greeting, still idling
            self._watch()
            return
        gate = self._ctx.gate
        if gate is not None and not gate.enter(self, self.client_address()):
            seclog.report("prelogin-limit", "imap", *self._who(), limit=gate.per_address)
            self.close(b"* BYE too many connections from your address\r\n")
            return
        CONNECTS["imap"].inc()
        self._write(self.session.greeting())

    def connection_lost(self, exc: Exception | None) -> None:
        self._mode = "closed"
        self._unwatch()
        self._unwatch_user()
        self._ctx.connections.discard(self)
        if self._ctx.gate is not None:
            self._ctx.gate.gone(self)
        self._frag = Fragmentizer(caps=_CLOSED_CAPS)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self._mode == "closed":
            return
        self._frag.feed(data)
        if self._running:
            if self._frag.buffered > _PAUSE_ABOVE:
                self._pause()
            return
        self._pump()

    def _pause(self) -> None:
        if self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool | None:
        if self._running or self._frag.buffered:
            # Pipelined commands, then FIN (e.g. "DONE", "LOGOUT", shutdown): reading
            # is not paused while a command runs, so answer what came first.
            self._eof = True
            return True
        self._unwatch()
        return None

    # -- reading commands -----------------------------------------------------
    def _pump(self) -> None:
        while not self._running and self._mode != "closed":
            if self._output_blocked():
                self._pause()  # until ``resume_writing``: the client is not reading
                return
            event = self._frag.next_event()
            if event is None:
                self._resume()  # only now: what is buffered is all handled
                return
            self._on_event(event)

    def _resume(self) -> None:
        t = self._transport
        if t is not None and self._paused and self._mode != "closed":
            t.resume_reading()
            self._paused = False

    def _on_event(self, event: FragEvent) -> None:
        if isinstance(event, NeedContinuation):
            self._write(b"+ Ready for literal data\r\n")
        elif isinstance(event, LineTooLong) and self._mode == "sasl":
            # An over-long SASL response ends the exchange (RFC 3501 §6.2.2 lets the
            # server refuse it with BAD): the next line is a command again.
            self._mode = "command"
            self._frag.raw_lines = False
            self._bad_input(self._sasl_tag, "SASL response too long", "TOOBIG")
        elif isinstance(event, LineTooLong):
            self._bad_input(event.tag, "line too long", "TOOBIG")
        elif isinstance(event, LiteralTooBig):
            what = "command" if event.total else f"literal of {event.size} octets"
            seclog.report("command-too-big", "imap", *self._who(), size=event.size)
            self._bad_input(event.tag, f"{what} is too big", "TOOBIG")
        elif isinstance(event, CommandReady):
            if self._mode == "idle":
                self._end_idle(event.data)
            elif self._mode == "sasl":
                self._sasl_step(event.data)
            else:
                self._command(event.data)

    def _bad_input(self, tag: str | None, text: str, code: str | None = None) -> None:
        self._bad += 1
        c_ = f"[{code}] " if code else ""
        self._write(f"{tag or '*'} BAD {c_}{text}\r\n".encode())
        if self._bad >= self._ctx.limits.max_bad_commands:
            seclog.report("bad-commands", "imap", *self._who())
            self.close(b"* BYE too many bad commands\r\n")

    def client_address(self) -> str:
        """The peer's address for the security log ("unix" for a Unix socket)."""
        t = self._transport
        return peer_host(t.get_extra_info("peername") if t is not None else None)

    def _who(self) -> tuple[str, str | None]:
        """(client address, account) for a security-log line."""
        user = self.session.user
        return self.client_address(), (user.address if user else None)

    def _command(self, data: bytes) -> None:
        try:
            cmd = COMMANDS.parse(data)
            row = COMMANDS.check_allowed(self.session.state, cmd)
        except ImapError as err:
            self._bad_input(parse_tag(data), err.text, err.code)
            return
        self._bad = 0
        if isinstance(cmd, c.Login | c.Authenticate) and self._ctx.guard.blocked(
            "imap", self.client_address(), cmd.username if isinstance(cmd, c.Login) else None
        ):  # refused before even the user look-up: a guessing run costs little
            self._finish_login(Action("verify", cmd.tag), None)
            return
        # Commands that arrive meanwhile wait in the buffer. Reading is paused only
        # for the rows flagged NEW_LAYER, STARTTLS and COMPRESS (after them the bytes
        # on the wire belong to a new layer: none may be read into the plaintext
        # buffer meanwhile), or when the buffer grows past _PAUSE_ABOVE
        # (``data_received``): a client nearly always waits for the reply, and pausing
        # and resuming cost two ``epoll_ctl`` calls per command, 8% of the server's
        # time in a connect storm. Once paused,
        # reading resumes only when the buffered commands are done (``_pump``), and
        # not while the client leaves more than ``max_output`` of replies unread.
        self._running = True
        if Flag.NEW_LAYER in row.flags:
            self._pause()
        start = time.perf_counter()  # for the command's latency (metrics)
        self._ctx.runner.submit(
            lambda st: self._execute(cmd, st),
            lambda result, exc: self._command_done(cmd, start, result, exc),
        )

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine for this connection (the rarer paths: a password for the
        auth threads, a failed login's delay, SASL, NOTIFY reports); the common
        ones are callbacks (``_command_done``, ``_refreshed``), because a task per
        command was a tenth of a connect storm's server time."""
        self._running = True
        task = asyncio.ensure_future(coro)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failed(task.exception())
            return
        self._after()

    def _failed(self, exc: BaseException | None) -> None:
        self._running = False
        log.error("internal error in session", exc_info=exc)
        self.close(b"* BYE internal server error\r\n")

    def _after(self) -> None:
        """A command or refresh has ended: what waited for it may go on."""
        self._running = False
        pending = self._notify_pending
        if pending is not None and pending.over_limit and self._mode != "closed":
            self._overflow()  # deferred from ``notify_event``: the session is free now
        if self._wake_again and self._mode == "idle":
            self._wake_again = False
            self.wake()
            return
        busy = self._mode not in ("command", "idle") or self._output_backlog()
        if self._notify_pending and not busy:
            self._start(self._report_notify())  # hints that came while busy
            return
        self._pump()  # resumes reading once the buffered commands are done
        if self._eof and not self._running and self._mode != "closed":
            self.close()
            return
        self._try_hibernate()

    # -- running a command ----------------------------------------------------
    def _execute(
        self, cmd: c.Command, store: Store
    ) -> tuple[Action | None, bytes, list[MailboxChanged]]:
        """On the store thread: the command, then updates the client may be told."""
        return handlers.run_command(self.session, cmd, store)

    def _command_done(
        self,
        cmd: c.Command,
        start: float,
        result: tuple[Action | None, bytes, list[MailboxChanged]] | None,
        exc: BaseException | None,
    ) -> None:
        """On the loop, once the store thread has run the command; ``start`` is
        when it was read (``perf_counter``), for its latency."""
        if exc is not None or result is None:
            self._failed(exc)
            return
        try:
            action, out, events = result
            for event in events:
                self._ctx.publisher.publish(event)
            if action is not None and action.kind == "notify":
                self._set_notify()  # before the OK: no hint may fall between OK and listening
            self._write(out)
            if action is not None and action.kind == "verify":
                pending = self._login(action)
                if pending is not None:
                    self._start(_timed(pending, cmd, start))  # it ends in ``_finished``
                    return
            elif action is not None:
                self._act(action)
        except Exception as err:  # as a task's exception would be: logged, session ended
            self._failed(err)
            return
        COMMAND_SECONDS[cmd.name].observe(time.perf_counter() - start)
        self._after()

    def _act(self, action: Action) -> None:
        if action.kind == "logout":
            self.close()
        elif action.kind == "starttls":
            self._starttls()
        elif action.kind == "idle":
            self._begin_idle(action.tag)
        elif action.kind == "sasl":
            self._sasl_tag = action.tag
            self._mode = "sasl"
            self._frag.raw_lines = True
            self._write(b"+ \r\n")
        elif action.kind == "compress" and self._transport is not None:
            self._transport = start_compression(self, self._transport)

    # -- NOTIFY (RFC 5465): unsolicited output whenever no command runs ---------
    def _set_notify(self) -> None:
        s = self.session
        if s.notify is None or s.user is None:
            self._unwatch_user()
        elif self._notify_pending is None:
            self._notify_pending = PendingHints(self._ctx.limits.notify_max_pending)
            self._ctx.hub.watch_user(s.user.id, self)

    def _unwatch_user(self) -> None:
        if self._notify_pending is not None and self.session.user is not None:
            self._ctx.hub.unwatch_user(self.session.user.id, self)
        self._notify_pending = None

    def notify_event(self, event: MailboxChanged) -> None:
        """The hub's call for any change of our user: report it now if nothing
        runs, else right after the running command (``_finished``). Past the limit
        the session overflows, also only once no command runs: the session's NOTIFY
        state belongs to the store thread while one does."""
        if self._notify_pending is None or self._mode == "closed":
            return
        if not self._notify_pending.add(event):
            if not self._running:
                self._overflow()
        elif not self._running and self._mode in ("command", "idle"):
            self._start(self._report_notify())

    def _overflow(self) -> None:
        """RFC 5465 §5.8: NOTIFY off, said in ``OK [NOTIFICATIONOVERFLOW]``."""
        self._write(cmd_notify.overflow(self.session))
        self._unwatch_user()

    def _output_blocked(self) -> bool:
        """Output backpressure (issue 15 item 2): a client that pipelines commands
        and does not read their replies gets no further command read while its
        unsent output (below TLS and COMPRESS: the socket's) is above
        ``max_output``; ``resume_writing`` goes on once it has read."""
        t = self._transport
        limit = max(self._ctx.limits.max_output, _MIN_MAX_OUTPUT)
        return t is not None and t.get_write_buffer_size() > limit

    def pause_writing(self) -> None:
        """Nothing to do: ``_pump`` looks at the backlog before each command."""

    def resume_writing(self) -> None:
        """The client has read most of its replies: read its next commands."""
        if not self._running and self._mode != "closed":
            self._after()

    def _output_backlog(self) -> bool:
        t = self._transport
        return t is not None and t.get_write_buffer_size() > self._ctx.limits.notify_max_output

    async def _report_notify(self) -> None:
        pending = self._notify_pending
        if not pending or self._output_backlog():
            return  # a client that does not read: hints wait, counted (notify_event)
        events = pending.take()
        s = self.session
        out = await self._ctx.runner.run(lambda st: cmd_notify.event_lines(s, events, st))
        if self._mode != "closed":
            self._write(out)

    def _password_known(self, action: Action) -> bool | None:
        """Whether the password is right, when that can be told without a thread: a
        ``{PLAIN}`` hash (one constant-time compare; no cache entry), or a hit in the
        credential cache. None: the auth pool must check it (also for a missing
        user, against the dummy hash, so that refusing one takes as long)."""
        user = action.user
        if user is None:
            return None
        stored = user.password_hash
        if cheap_to_verify(stored):
            return verify_password(stored, action.password)
        return True if self._ctx.credentials.check(user.address, stored, action.password) else None

    def _login(self, action: Action) -> Coroutine[Any, Any, None] | None:
        """A LOGIN/AUTHENTICATE: the guessing limits first (``auth/guard.py``), then
        what can be told in place; a coroutine when the rest needs the hashing
        threads or a failure's delay."""
        client, guard = self.client_address(), self._ctx.guard
        if guard.admit("imap", client, action.account) is not None:
            self._finish_login(action, None)
            return None
        known = self._password_known(action)
        if not known:
            return self._verify(action, known, client)
        guard.settle("imap", client, action.account, True)
        self._finish_login(action, True)
        return None

    def _finish_login(self, action: Action, ok: bool | None) -> None:
        cmd_auth.finish_login(self.session, action, ok)
        if ok:
            self._frag.caps = frag_caps(self._ctx.limits, True)
            if self._ctx.gate is not None:
                self._ctx.gate.leave(self)  # no longer a pre-login connection
        self._write(self.session.take_output())
        if self.session.auth_failures >= self._ctx.limits.max_auth_failures:
            self.close(b"* BYE too many failed logins\r\n")

    async def _verify(self, action: Action, known: bool | None, client: str) -> None:
        """Finish a login: ``known`` is ``_password_known``'s answer, and None means
        the auth pool checks the password; a failure waits a growing delay first."""
        ok, guard = known, self._ctx.guard
        if ok is None:
            user, cache = action.user, self._ctx.credentials
            stored = user.password_hash if user else self._ctx.dummy_hash
            pool = self._ctx.auth_pool
            checked = await guard.check(
                "imap", client, action.account, pool, verify_password, stored, action.password
            )
            if checked is None:  # the hashing queue is full
                guard.settle("imap", client, action.account, None)
                self._finish_login(action, None)
                return
            ok = checked and user is not None
            if ok and user is not None:
                cache.remember(user.address, stored, action.password)
        guard.settle("imap", client, action.account, ok)
        if not ok:
            fails = self.session.auth_failures + 1
            await asyncio.sleep(self._ctx.limits.auth_failure_delay * (2 ** (fails - 1)))
        self._finish_login(action, ok)

    def _sasl_step(self, line: bytes) -> None:
        self._mode = "command"
        self._frag.raw_lines = False
        tag = self._sasl_tag

        async def step() -> None:
            def run(st: Store) -> Action | None:
                try:
                    return cmd_auth.sasl_response(self.session, tag, line, st)
                except ImapError as err:
                    self.session.tagged(tag, err.status, err.text, err.code)
                    return None
                except StoreError as err:  # e.g. the database is down: NO [UNAVAILABLE]
                    self.session.tagged(tag, "NO", reply_text(err), response_code(err))
                    return None

            action = await self._ctx.runner.run(run)
            self._write(self.session.take_output())
            pending = self._login(action) if action is not None else None
            if pending is not None:
                await pending

        self._start(step())

    def _starttls(self) -> None:
        """Put the lean TLS layer (``net/tls_layer.py``) under this connection. The
        handshake runs as the client sends; ``connection_made`` is called again
        with the TLS transport once it completes."""
        assert self._ctx.tls is not None and self._transport is not None
        # Anything the client sent after STARTTLS in plaintext is dropped (RFC 3501
        # §6.2.1, and the command-injection attacks of CVE-2011-0411 style).
        self._frag = Fragmentizer(caps=frag_caps(self._ctx.limits, False))
        raw = self._transport
        layer = TlsLayer(self, self._ctx.tls)
        self._upgrading = True
        raw.set_protocol(layer)
        layer.connection_made(raw)

    # -- IDLE -----------------------------------------------------------------
    def _begin_idle(self, tag: str) -> None:
        self._idle_tag = tag
        self._mode = "idle"
        self._frag.raw_lines = True
        self._watch()  # before "+": a hint right after the client sees it is not lost
        self._write(b"+ idling\r\n")

    def _watch(self) -> None:
        s = self.session
        if s.user is not None and s.view is not None and self._watching is None:
            self._watching = (s.user.id, s.view.mailbox_id)
            self._ctx.hub.add(s.user.id, s.view.mailbox_id, self)

    def _try_hibernate(self) -> None:
        """After a command or refresh ends in IDLE with nothing in flight."""
        h = self._ctx.hibernator
        # NOTIFY and COMPRESS keep state a hibernation record does not hold.
        keeps = self._notify_pending is not None or self.session.compressed
        if h is not None and self._mode == "idle" and not self._running and not keeps:
            h.hibernate(self)

    # -- hibernation support (net/hibernate.py) ---------------------------------
    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def idle_tag(self) -> str:
        return self._idle_tag

    def quiet_input(self) -> bool:
        return self._frag.buffered == 0 and not self._wake_again

    def detach(self) -> None:
        """Let go of the socket without closing the connection (the hibernator
        holds a duplicate descriptor)."""
        self._unwatch()
        self._mode = "closed"
        self._ctx.connections.discard(self)
        t, self._transport = self._transport, None
        if t is not None:
            t.abort()

    def resume_idle(
        self, tag: str, user: User, view: SelectedView, loopback: bool, last_activity: float
    ) -> None:
        """Become the connection a hibernated record describes, still in IDLE."""
        s = self.session
        s.user, s.view, s.loopback = user, view, loopback
        s.state = State.SELECTED
        flags = (("CONDSTORE", view.condstore), ("QRESYNC", view.qresync), ("IMAP4REV2", view.rev2))
        s.enabled.update(name for name, on in flags if on)
        self._idle_tag = tag
        self._mode = "idle"
        self._frag.caps = frag_caps(self._ctx.limits, True)
        self._frag.raw_lines = True
        self.last_activity = last_activity

    def write_raw(self, data: bytes) -> None:
        self._write(data)

    def _unwatch(self) -> None:
        if self._watching is not None:
            self._ctx.hub.remove(*self._watching, self)
            self._watching = None

    def _end_idle(self, line: bytes) -> None:
        self._unwatch()
        self._mode = "command"
        self._frag.raw_lines = False
        if line.rstrip(b"\r\n").upper() == b"DONE":
            self._write(f"{self._idle_tag} OK IDLE terminated\r\n".encode())
        else:
            self._bad_input(self._idle_tag, "expected DONE")

    def wake(self) -> None:
        """A hint says our mailbox changed: report it (coalesced while busy)."""
        if self._mode != "idle":
            return
        if self._running:
            self._wake_again = True
            return
        view = self.session.view
        if view is None:
            return
        self._running = True
        s = self.session  # under NOTIFY, with the FETCH items MessageNew asked for
        self._ctx.runner.submit_read(
            lambda st: cmd_notify.idle_refresh(s, view, st), self._refreshed
        )

    def _refreshed(self, lines: list[bytes] | None, exc: BaseException | None) -> None:
        if isinstance(exc, StoreUnavailable):  # stay idle: the next re-check retries
            log.debug("idle refresh skipped: %s", exc)
            self._after()
            return
        if exc is not None:
            self._failed(exc)
            return
        if lines and self._mode == "idle":
            self._write(b"".join(b"* " + line + b"\r\n" for line in lines))
        if self._watching is not None:
            (wakeup.told if lines else wakeup.checked)(*self._watching)
        self._after()

    # -- writing and closing --------------------------------------------------
    def _write(self, data: bytes) -> None:
        t = self._transport
        if data and t is not None and not t.is_closing():
            t.write(data)
            self.last_write = time.monotonic()

    def keepalive(self) -> None:
        if self._mode == "idle":
            self._write(b"* OK Still here\r\n")

    @property
    def idling(self) -> bool:
        return self._mode == "idle"

    def close(self, farewell: bytes = b"") -> None:
        if farewell:
            self._write(farewell)
        self._mode = "closed"
        self._unwatch()
        self._unwatch_user()
        if self._transport is not None:
            self._transport.close()


async def _timed(login: Coroutine[Any, Any, None], cmd: c.Command, start: float) -> None:
    """A LOGIN/AUTHENTICATE whose password check (or failure delay) runs on: its
    latency ends when the check does."""
    await login
    COMMAND_SECONDS[cmd.name].observe(time.perf_counter() - start)
