"""The thin driver between a socket and the sans-IO IMAP core (design.md rule 8).

One ``ImapConnection`` (an ``asyncio.Protocol``, no task of its own) per client. Bytes
go into the connection machine (``imap/connection.py``), which owns the protocol's
state; the driver only carries out the effects it returns: writes, commands run on
the store thread, password checks, TLS and COMPRESS, the idle hub, closing. While a
command runs, no further command is taken, so a client cannot pile up work. An idling
connection holds no task and no buffer: it waits in the ``IdleHub`` until a hint wakes it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

from pushmail import seclog
from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import cmd_notify, handlers
from pushmail.imap import commands as c
from pushmail.imap.connection import (
    BYE_INTERNAL,
    BYE_PER_ADDRESS,
    LOGGED_IN,
    NOTIFY,
    START_COMPRESS,
    START_TLS,
    UNWATCH,
    WATCH,
    Close,
    ConnectionMachine,
    Effect,
    Report,
    RunCommand,
    SaslStep,
    VerifyPassword,
)
from pushmail.imap.notify import PendingHints
from pushmail.imap.session import Action
from pushmail.metrics import wakeup
from pushmail.metrics.series import COMMAND_SECONDS, CONNECTS
from pushmail.net import imap_login
from pushmail.net.imap_login import ImapContext
from pushmail.store.interfaces import Store, StoreUnavailable
from pushmail.transport.compress import start_compression
from pushmail.transport.conncap import peer_host
from pushmail.transport.small_reads import SmallReads
from pushmail.transport.tls_layer import TlsLayer

if TYPE_CHECKING:
    from pushmail.imap.selected import SelectedView
    from pushmail.store.interfaces import User

__all__ = ["ImapConnection", "ImapContext"]

log = logging.getLogger("pushmail.imap")

_PAUSE_ABOVE = 64 * 1024  # bytes buffered while a command runs before reading pauses
# asyncio's transports call ``pause_writing`` above 64 KiB unsent (their default high
# water mark) and ``resume_writing`` once below 16 KiB. Output backpressure waits
# for that ``resume_writing``, so its threshold may not be below the mark.
_MIN_MAX_OUTPUT = 64 * 1024


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
        "_ctx",
        "_eof",
        "_m",
        "_notify_pending",
        "_paused",
        "_running",
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
        self._m = ConnectionMachine(ctx.info, ctx.limits, secure)
        self._transport: asyncio.Transport | None = None
        self._upgrading = False  # STARTTLS: the next connection_made is the TLS layer
        self._running = False  # a command or refresh is on the store thread
        self._wake_again = False
        self._paused = False
        self._eof = False  # the client half-closed while commands were still to answer
        self._watching: tuple[int, int] | None = None
        # NOTIFY (RFC 5465): hints not yet reported; None while not watching the user.
        self._notify_pending: PendingHints | None = None
        self.session = self._m.session
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
        if self._m.mode == "idle":  # resumed from hibernation: no greeting, still idling
            self._watch()
            return
        gate = self._ctx.gate
        if gate is not None and not gate.enter(self, self.client_address()):
            seclog.report("prelogin-limit", "imap", *self._who(), limit=gate.per_address)
            self.close(BYE_PER_ADDRESS)
            return
        CONNECTS["imap"].inc()
        self._write(self._m.greeting())

    def connection_lost(self, exc: Exception | None) -> None:
        self._m.close()
        self._unwatch()
        self._unwatch_user()
        self._ctx.connections.discard(self)
        if self._ctx.gate is not None:
            self._ctx.gate.gone(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        m = self._m
        if m.mode == "closed":
            return
        m.receive_data(data)
        if self._running:
            if m.buffered > _PAUSE_ABOVE:
                self._pause()
            return
        self._pump()

    def _pause(self) -> None:
        if self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool | None:
        if self._running or self._m.buffered:
            # Pipelined commands, then FIN (e.g. "DONE", "LOGOUT", shutdown): reading
            # is not paused while a command runs, so answer what came first.
            self._eof = True
            return True
        self._unwatch()
        return None

    @property
    def buffered(self) -> int:
        """Bytes read and not yet taken as a command."""
        return self._m.buffered

    # -- carrying out the machine's effects -----------------------------------
    def _pump(self) -> None:
        m = self._m
        q = m.pending
        while not self._running:
            if q:  # decided on already: carried out whatever the output backlog
                effect = q.popleft()
            elif self._output_blocked():
                self._pause()  # until ``resume_writing``: the client is not reading
                return
            else:
                next_effect = m.next_effect()
                if next_effect is None:
                    self._resume()  # only now: what is buffered is all handled
                    return
                effect = next_effect
            # The two common effects first, without a call.
            if type(effect) is RunCommand:
                self._run(effect)
            elif type(effect) is bytes:
                self._write(effect)
            else:
                self._do(effect)

    def _drain(self) -> Coroutine[Any, Any, None] | None:
        """Carry out what a reported outcome led to; a password check that must run
        on is returned (it is always the last effect queued)."""
        q = self._m.pending
        while q:
            effect = q.popleft()
            if type(effect) is bytes:
                self._write(effect)
            elif type(effect) is VerifyPassword:
                return self._login(effect.action)
            else:
                self._do(effect)
        return None

    def _do(self, effect: Effect) -> None:
        if isinstance(effect, bytes):
            self._write(effect)
        elif isinstance(effect, RunCommand):
            self._run(effect)
        elif effect is WATCH:
            self._watch()
        elif effect is UNWATCH:
            self._unwatch()
        elif isinstance(effect, Close):
            self.close(effect.farewell)
        elif isinstance(effect, Report):
            client, user = self._who()
            seclog.report(effect.event, "imap", client, user, logging.WARNING, **effect.fields)
        elif effect is NOTIFY:
            self._set_notify()
        elif effect is START_TLS:
            self._starttls()
        elif effect is START_COMPRESS and self._transport is not None:
            self._transport = start_compression(self, self._transport)
        elif effect is LOGGED_IN and self._ctx.gate is not None:
            self._ctx.gate.leave(self)  # no longer a pre-login connection
        elif isinstance(effect, SaslStep):
            self._start(self._sasl_step(effect))
        elif isinstance(effect, VerifyPassword):  # a SASL step's, handled there
            pending = self._login(effect.action)
            if pending is not None:
                self._start(pending)

    def _resume(self) -> None:
        t = self._transport
        if t is not None and self._paused and self._m.mode != "closed":
            t.resume_reading()
            self._paused = False

    def client_address(self) -> str:
        """The peer's address for the security log ("unix" for a Unix socket)."""
        t = self._transport
        return peer_host(t.get_extra_info("peername") if t is not None else None)

    def _who(self) -> tuple[str, str | None]:
        """(client address, account) for a security-log line."""
        user = self.session.user
        return self.client_address(), (user.address if user else None)

    def _run(self, effect: RunCommand) -> None:
        cmd = effect.cmd
        if effect.login and self._ctx.guard.blocked(
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
        if effect.new_layer:
            self._pause()
        start = time.perf_counter()  # for the command's latency (metrics)
        session = self.session
        self._ctx.runner.submit(
            lambda st: handlers.run_command(session, cmd, st),
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
        self.close(BYE_INTERNAL)

    def _after(self) -> None:
        """A command or refresh has ended: what waited for it may go on."""
        self._running = False
        mode = self._m.mode
        pending = self._notify_pending
        if pending is not None and pending.over_limit and mode != "closed":
            self._overflow()  # deferred from ``notify_event``: the session is free now
        if self._wake_again and mode == "idle":
            self._wake_again = False
            self.wake()
            return
        busy = mode not in ("command", "idle") or self._output_backlog()
        if self._notify_pending and not busy:
            self._start(self._report_notify())  # hints that came while busy
            return
        self._pump()  # resumes reading once the buffered commands are done
        if self._eof and not self._running and self._m.mode != "closed":
            self.close()
            return
        self._try_hibernate()

    # -- running a command ----------------------------------------------------
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
            self._m.command_done(action, out)
            pending = self._drain()
            if pending is not None:
                self._start(_timed(pending, cmd, start))  # it ends in ``_finished``
                return
        except Exception as err:  # as a task's exception would be: logged, session ended
            self._failed(err)
            return
        COMMAND_SECONDS[cmd.name].observe(time.perf_counter() - start)
        self._after()

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
        if self._notify_pending is None or self._m.mode == "closed":
            return
        if not self._notify_pending.add(event):
            if not self._running:
                self._overflow()
        elif not self._running and self._m.mode in ("command", "idle"):
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
        if not self._running and self._m.mode != "closed":
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
        if self._m.mode != "closed":
            self._write(out)

    # -- logging in (net/imap_login.py) -----------------------------------------
    def _login(self, action: Action) -> Coroutine[Any, Any, None] | None:
        return imap_login.login(
            self._ctx, self.client_address(), action, self.session, self._finish_login
        )

    def _finish_login(self, action: Action, ok: bool | None) -> None:
        self._m.login_done(action, ok)
        self._drain()  # a login's outcome asks for no further password check

    async def _sasl_step(self, step: SaslStep) -> None:
        m = self._m

        def run(st: Store) -> Action | None:
            return m.run_sasl(step, st)

        m.sasl_done(await self._ctx.runner.run(run))
        pending = self._drain()
        if pending is not None:
            await pending

    def _starttls(self) -> None:
        """Put the lean TLS layer (``transport/tls_layer.py``) under this connection. The
        handshake runs as the client sends; ``connection_made`` is called again
        with the TLS transport once it completes. The machine has dropped what the
        client sent after STARTTLS in plaintext."""
        assert self._ctx.tls is not None and self._transport is not None
        raw = self._transport
        layer = TlsLayer(self, self._ctx.tls)
        self._upgrading = True
        raw.set_protocol(layer)
        layer.connection_made(raw)

    # -- IDLE -----------------------------------------------------------------
    def _watch(self) -> None:
        s = self.session
        if s.user is not None and s.view is not None and self._watching is None:
            self._watching = (s.user.id, s.view.mailbox_id)
            self._ctx.hub.add(s.user.id, s.view.mailbox_id, self)

    def _try_hibernate(self) -> None:
        """After a command or refresh ends in IDLE with nothing in flight."""
        h = self._ctx.hibernator
        # NOTIFY and COMPRESS keep state a hibernation record does not hold.
        keeps = self._notify_pending is not None
        if h is not None and self._m.may_sleep and not self._running and not keeps:
            h.hibernate(self)

    # -- hibernation support (net/hibernate.py) ---------------------------------
    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def idle_tag(self) -> str:
        return self._m.idle_tag

    def quiet_input(self) -> bool:
        return self._m.buffered == 0 and not self._wake_again

    def detach(self) -> None:
        """Let go of the socket without closing the connection (the hibernator
        holds a duplicate descriptor)."""
        self._unwatch()
        self._m.close()
        self._ctx.connections.discard(self)
        t, self._transport = self._transport, None
        if t is not None:
            t.abort()

    def resume_idle(
        self, tag: str, user: User, view: SelectedView, loopback: bool, last_activity: float
    ) -> None:
        """Become the connection a hibernated record describes, still in IDLE."""
        self._m.resume_idle(tag, user, view, loopback)
        self.last_activity = last_activity

    def write_raw(self, data: bytes) -> None:
        self._write(data)

    def _unwatch(self) -> None:
        if self._watching is not None:
            self._ctx.hub.remove(*self._watching, self)
            self._watching = None

    def wake(self) -> None:
        """A hint says our mailbox changed: report it (coalesced while busy)."""
        if self._m.mode != "idle":
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
        if lines and self._m.mode == "idle":
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
        self._write(self._m.keepalive())

    @property
    def idling(self) -> bool:
        return self._m.mode == "idle"

    def close(self, farewell: bytes = b"") -> None:
        if farewell:
            self._write(farewell)
        self._m.close()
        self._unwatch()
        self._unwatch_user()
        if self._transport is not None:
            self._transport.close()


async def _timed(login: Coroutine[Any, Any, None], cmd: c.Command, start: float) -> None:
    """A LOGIN/AUTHENTICATE whose password check (or failure delay) runs on: its
    latency ends when the check does."""
    await login
    COMMAND_SECONDS[cmd.name].observe(time.perf_counter() - start)
