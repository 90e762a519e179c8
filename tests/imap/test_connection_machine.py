"""The connection machine (imap/connection.py) driven without a socket: bytes in,
effects out, each effect carried out here as the driver would, over a real store."""

from __future__ import annotations

import ast
import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushmail.auth.passwords import verify_password
from pushmail.config import Limits
from pushmail.imap import handlers
from pushmail.imap.connection import (
    BYE_BAD_COMMANDS,
    BYE_FAILED_LOGINS,
    CONTINUE_IDLE,
    CONTINUE_LITERAL,
    CONTINUE_SASL,
    KEEPALIVE,
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
from pushmail.imap.session import Action, ServerInfo, State
from pushmail.store.sqlite import SqliteStore

LOGIN = b'L LOGIN alice@example.org "alice-pw"\r\n'


class Driver:
    """Carries out the machine's effects at once, as ``net/imap_conn.py`` does over
    time; ``log`` holds every effect, writes as bytes."""

    def __init__(self, store: SqliteStore, secure: bool = True, **limits: int) -> None:
        self.store = store
        self.m = ConnectionMachine(ServerInfo(), Limits(**limits), secure, loopback=False)
        self.log: list[Effect] = []
        self.held: list[Effect] = []  # outcomes not reported yet (hold=True)

    def feed(self, data: bytes, hold: bool = False) -> None:
        self.m.receive_data(data)
        while (effect := self.m.next_effect()) is not None:
            self._do(effect, hold)

    def _do(self, effect: Effect, hold: bool) -> None:
        self.log.append(effect)
        if hold and isinstance(effect, RunCommand | VerifyPassword | SaslStep):
            self.held.append(effect)
            return
        self.report(effect)

    def report(self, effect: Effect) -> None:
        m = self.m
        if isinstance(effect, RunCommand):
            action, out, _ = handlers.run_command(m.session, effect.cmd, self.store)
            m.command_done(action, out)
        elif isinstance(effect, VerifyPassword):
            a = effect.action
            ok = a.user is not None and verify_password(a.user.password_hash, a.password)
            m.login_done(a, ok)
        elif isinstance(effect, SaslStep):
            m.sasl_done(m.run_sasl(effect, self.store))
        elif isinstance(effect, Close):
            m.close()
        while (follow := m.queued()) is not None:
            self._do(follow, False)

    def release(self) -> None:
        """Report the held outcomes, then take what the machine hands out next."""
        held, self.held = self.held, []
        for effect in held:
            self.report(effect)
        self.feed(b"")

    @property
    def out(self) -> bytes:
        return b"".join(e for e in self.log if isinstance(e, bytes))

    def take(self) -> list[Effect]:
        log, self.log = self.log, []
        return log


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.sqlite3")
    s.create_user("alice@example.org", "{PLAIN}alice-pw")
    yield s
    s.close()


@pytest.fixture
def d(store: SqliteStore) -> Driver:
    return Driver(store)


def logged_in(store: SqliteStore, **limits: int) -> Driver:
    d = Driver(store, **limits)
    d.feed(LOGIN)
    assert d.m.session.state is State.AUTHENTICATED
    d.take()
    return d


def selected(store: SqliteStore) -> Driver:
    d = logged_in(store)
    d.feed(b"s SELECT INBOX\r\n")
    assert d.m.session.state is State.SELECTED
    d.take()
    return d


# -- commands whole, byte by byte, pipelined --------------------------------------


def test_greeting_names_capabilities(d: Driver) -> None:
    g = d.m.greeting()
    assert g.startswith(b"* OK [CAPABILITY IMAP4rev1 ") and g.endswith(b"pushmail ready\r\n")
    assert b"AUTH=PLAIN" in g


def test_a_whole_command_runs_and_answers(d: Driver) -> None:
    d.feed(b"a NOOP\r\n")
    run = [e for e in d.log if isinstance(e, RunCommand)]
    assert len(run) == 1 and run[0].cmd.name == "NOOP" and not run[0].login
    assert d.out.endswith(b"a OK NOOP completed\r\n") or b"a OK" in d.out


def test_byte_by_byte_gives_the_same_output(store: SqliteStore) -> None:
    data = LOGIN + b"c CAPABILITY\r\nn NOOP\r\n"
    whole, split = Driver(store), Driver(store)
    whole.feed(data)
    for i in range(len(data)):
        split.feed(data[i : i + 1])
    assert split.out == whole.out and b"c OK" in whole.out and b"n OK" in whole.out


def test_pipelined_commands_run_one_at_a_time_in_order(d: Driver) -> None:
    d.feed(b"a NOOP\r\nb CAPABILITY\r\nc NOOP\r\n", hold=True)
    assert [type(e) for e in d.log] == [RunCommand]  # b waits for a's outcome
    assert d.m.waiting and d.m.next_effect() is None
    d.release()
    d.release()
    d.release()
    names = [e.cmd.tag for e in d.log if isinstance(e, RunCommand)]
    assert names == ["a", "b", "c"]
    out = d.out
    assert out.index(b"a OK") < out.index(b"b OK") < out.index(b"c OK")


def test_writes_are_plain_bytes(d: Driver) -> None:
    d.feed(b"a NOOP\r\n")
    assert any(type(e) is bytes for e in d.log)


def test_data_split_inside_the_crlf(d: Driver) -> None:
    d.feed(b"a NOOP\r")
    assert d.log == [] and d.m.buffered == 7
    d.feed(b"\n")
    assert b"a OK" in d.out and d.m.buffered == 0


# -- literals ---------------------------------------------------------------------


def test_synchronizing_literal_gets_a_continuation(d: Driver) -> None:
    d.feed(b"L LOGIN {17}\r\n")
    assert d.take() == [CONTINUE_LITERAL]
    d.feed(b'alice@example.org "alice-pw"\r\n')
    assert b"L OK" in d.out and d.m.session.state is State.AUTHENTICATED


def test_non_synchronizing_literal_gets_none(d: Driver) -> None:
    d.feed(b'L LOGIN {17+}\r\nalice@example.org "alice-pw"\r\n')
    assert CONTINUE_LITERAL not in d.log and b"L OK" in d.out


def test_literal_too_big_before_login_is_refused_and_reported(d: Driver) -> None:
    d.feed(b"L LOGIN {999999}\r\n")
    reports = [e for e in d.log if isinstance(e, Report)]
    assert reports and reports[0].event == "command-too-big"
    assert reports[0].fields == {"size": 999999}
    assert b"L BAD [TOOBIG]" in d.out and CONTINUE_LITERAL not in d.log


def test_literal_after_login_may_be_larger(store: SqliteStore) -> None:
    d = logged_in(store)
    d.feed(b"c CREATE {5000}\r\n")
    assert d.take() == [CONTINUE_LITERAL]  # 5000 octets: over the pre-login cap


def test_line_too_long_is_bad_toobig(d: Driver) -> None:
    d.feed(b"a NOOP " + b"x" * 100_000 + b"\r\n")
    assert b"BAD [TOOBIG] line too long" in d.out


# -- bad commands -----------------------------------------------------------------


def test_a_bad_command_is_answered_bad(d: Driver) -> None:
    d.feed(b"a FROBNICATE\r\n")
    assert d.out.startswith(b"a BAD ") and d.m.mode == "command"


def test_too_many_bad_commands_end_with_bye_and_close(store: SqliteStore) -> None:
    d = Driver(store, max_bad_commands=3)
    d.feed(b"a X\r\nb X\r\nc X\r\nd NOOP\r\n")
    assert [e.event for e in d.log if isinstance(e, Report)] == ["bad-commands"]
    close = d.log[-1]
    assert isinstance(close, Close) and close.farewell == BYE_BAD_COMMANDS
    assert d.m.mode == "closed" and b"d OK" not in d.out  # nothing read after
    d.feed(b"e NOOP\r\n")
    assert d.log[-1] is close and d.m.buffered == 0


def test_a_good_command_resets_the_bad_count(store: SqliteStore) -> None:
    d = Driver(store, max_bad_commands=2)
    d.feed(b"a X\r\nb NOOP\r\nc X\r\nd NOOP\r\n")
    assert not any(isinstance(e, Close) for e in d.log) and b"d OK" in d.out


def test_a_command_not_allowed_in_the_state_is_bad(d: Driver) -> None:
    d.feed(b"a SELECT INBOX\r\n")
    assert d.out.startswith(b"a BAD") and not any(isinstance(e, RunCommand) for e in d.log)


# -- logging in -------------------------------------------------------------------


def test_login_asks_for_a_password_check_then_leaves_prelogin(d: Driver) -> None:
    d.feed(LOGIN)
    kinds = [type(e) if not isinstance(e, bytes) else bytes for e in d.log]
    assert kinds[:2] == [RunCommand, VerifyPassword]
    run = d.log[0]
    assert isinstance(run, RunCommand) and run.login
    assert LOGGED_IN in d.log and b"L OK [CAPABILITY" in d.out


def test_failed_logins_end_with_bye(store: SqliteStore) -> None:
    d = Driver(store, max_auth_failures=2)
    d.feed(b"a LOGIN alice@example.org wrong\r\nb LOGIN alice@example.org wrong\r\nc NOOP\r\n")
    assert d.out.count(b"NO [AUTHENTICATIONFAILED]") == 2
    close = d.log[-1]
    assert isinstance(close, Close) and close.farewell == BYE_FAILED_LOGINS
    assert b"c OK" not in d.out and LOGGED_IN not in d.log


def test_a_login_refused_unchecked_is_no_unavailable(d: Driver) -> None:
    d.feed(LOGIN, hold=True)
    run = d.held.pop()
    assert isinstance(run, RunCommand) and run.login
    d.m.login_done(Action("verify", "L"), None)  # the guessing limits refused it
    assert d.m.queued() == b"L NO [UNAVAILABLE] too many login attempts, try again later\r\n"
    assert not d.m.waiting and d.m.session.state is State.NOT_AUTHENTICATED


# -- SASL -------------------------------------------------------------------------


def test_sasl_plain_exchange(d: Driver) -> None:
    d.feed(b"A AUTHENTICATE PLAIN\r\n")
    assert d.log[-1] == CONTINUE_SASL and d.m.mode == "sasl"
    d.feed(base64.b64encode(b"\0alice@example.org\0alice-pw") + b"\r\n")
    assert any(isinstance(e, SaslStep) for e in d.log)
    assert any(isinstance(e, VerifyPassword) for e in d.log)
    assert b"A OK" in d.out and d.m.mode == "command"
    assert d.m.session.state is State.AUTHENTICATED


def test_sasl_with_an_initial_response(d: Driver) -> None:
    ir = base64.b64encode(b"\0alice@example.org\0alice-pw").decode()
    d.feed(f"A AUTHENTICATE PLAIN {ir}\r\n".encode())
    assert CONTINUE_SASL not in d.log and b"A OK" in d.out


def test_sasl_cancel(d: Driver) -> None:
    d.feed(b"A AUTHENTICATE PLAIN\r\n*\r\nn NOOP\r\n")
    assert b"A BAD authentication cancelled" in d.out
    assert d.m.mode == "command" and b"n OK" in d.out


def test_sasl_bad_base64(d: Driver) -> None:
    d.feed(b"A AUTHENTICATE PLAIN\r\n!!!notbase64\r\n")
    assert b"A BAD invalid base64" in d.out and d.m.mode == "command"


def test_sasl_wrong_password(d: Driver) -> None:
    d.feed(b"A AUTHENTICATE PLAIN\r\n" + base64.b64encode(b"\0alice@example.org\0no") + b"\r\n")
    assert b"A NO [AUTHENTICATIONFAILED]" in d.out and not d.m.waiting


def test_sasl_response_too_long_ends_the_exchange(d: Driver) -> None:
    d.feed(b"A AUTHENTICATE PLAIN\r\n" + b"Q" * 100_000 + b"\r\nn NOOP\r\n")
    assert b"A BAD [TOOBIG] SASL response too long" in d.out
    assert d.m.mode == "command" and b"n OK" in d.out


# -- IDLE -------------------------------------------------------------------------


def test_idle_watches_before_the_continuation(store: SqliteStore) -> None:
    d = selected(store)
    d.feed(b"i IDLE\r\n")
    effects = d.take()
    assert effects.index(WATCH) == effects.index(CONTINUE_IDLE) - 1
    assert d.m.mode == "idle" and d.m.idle_tag == "i" and d.m.may_sleep


def test_done_ends_idle(store: SqliteStore) -> None:
    d = selected(store)
    d.feed(b"i IDLE\r\n")
    d.take()
    d.feed(b"DONE\r\n")
    assert d.take() == [UNWATCH, b"i OK IDLE terminated\r\n"] and d.m.mode == "command"


def test_done_byte_by_byte_and_lower_case(store: SqliteStore) -> None:
    d = selected(store)
    d.feed(b"i IDLE\r\n")
    d.take()
    for b in b"done\r\n":
        d.feed(bytes([b]))
    assert d.take() == [UNWATCH, b"i OK IDLE terminated\r\n"]


def test_a_bad_done_is_bad_and_ends_idle(store: SqliteStore) -> None:
    d = selected(store)
    d.feed(b"i IDLE\r\n")
    d.take()
    d.feed(b"x NOOP\r\n")
    assert d.take() == [UNWATCH, b"i BAD expected DONE\r\n"] and d.m.mode == "command"


def test_done_pipelined_with_commands(store: SqliteStore) -> None:
    d = selected(store)
    d.feed(b"i IDLE\r\nDONE\r\nn NOOP\r\n")
    out = d.out
    assert out.index(CONTINUE_IDLE) < out.index(b"i OK IDLE") < out.index(b"n OK")


def test_keepalive_only_while_idling(store: SqliteStore) -> None:
    d = selected(store)
    assert d.m.keepalive() == b""
    d.feed(b"i IDLE\r\n")
    assert d.m.keepalive() == KEEPALIVE == b"* OK Still here\r\n"


def test_resumed_from_hibernation_the_session_is_idling(store: SqliteStore) -> None:
    live = selected(store)
    view, user = live.m.session.view, live.m.session.user
    assert view is not None and user is not None
    d = Driver(store)
    d.m.resume_idle("T7", user, view, loopback=True)
    assert d.m.mode == "idle" and d.m.session.state is State.SELECTED
    d.feed(b"DONE\r\nf UID FETCH 1:* FLAGS\r\n")
    assert b"T7 OK IDLE terminated\r\n" in d.out and b"f OK" in d.out


# -- STARTTLS, COMPRESS, NOTIFY, LOGOUT -------------------------------------------


def test_starttls_drops_what_was_pipelined_after_it(store: SqliteStore) -> None:
    d = Driver(store, secure=False)
    d.feed(b"t STARTTLS\r\n" + LOGIN, hold=True)
    run = d.log[0]
    assert isinstance(run, RunCommand) and run.new_layer  # the driver stops reading
    d.release()
    assert b"t OK" in d.out and START_TLS in d.log
    assert d.out.index(b"t OK") < len(d.out)  # the OK went out before TLS
    assert d.log.index(START_TLS) > max(i for i, e in enumerate(d.log) if type(e) is bytes)
    assert d.m.buffered == 0 and not any(isinstance(e, VerifyPassword) for e in d.log)
    assert d.m.session.state is State.NOT_AUTHENTICATED


def test_starttls_when_already_secure_is_refused(d: Driver) -> None:
    d.feed(b"t STARTTLS\r\n")
    assert START_TLS not in d.log and b"t BAD" in d.out


def test_compress_after_its_ok(store: SqliteStore) -> None:
    d = logged_in(store)
    d.feed(b"z COMPRESS DEFLATE\r\n")
    run = d.log[0]
    assert isinstance(run, RunCommand) and run.new_layer
    assert d.log[-1] is START_COMPRESS and b"z OK" in d.out


def test_compressed_or_notify_session_may_not_sleep(store: SqliteStore) -> None:
    d = selected(store)
    d.m.session.compressed = True
    d.feed(b"i IDLE\r\n")
    assert d.m.mode == "idle" and not d.m.may_sleep


def test_notify_is_followed_before_its_ok(store: SqliteStore) -> None:
    d = logged_in(store)
    d.feed(b"n NOTIFY SET (selected (MessageNew MessageExpunge))\r\n")
    assert NOTIFY in d.log
    ok = next(i for i, e in enumerate(d.log) if type(e) is bytes and b"n OK" in e)
    assert d.log.index(NOTIFY) < ok


def test_logout_says_bye_then_closes(d: Driver) -> None:
    d.feed(b"o LOGOUT\r\nn NOOP\r\n")
    assert b"* BYE" in d.out and b"o OK" in d.out and b"n OK" not in d.out
    close = d.log[-1]
    assert isinstance(close, Close) and close.farewell == b"" and d.m.mode == "closed"


def test_an_outcome_after_close_leads_to_nothing(store: SqliteStore) -> None:
    d = selected(store)
    d.feed(b"i IDLE\r\n", hold=True)
    d.m.close()  # the client went away while IDLE ran
    d.release()
    assert WATCH not in d.log and d.m.mode == "closed" and not d.m.waiting


def test_the_machine_imports_no_io_and_nothing_of_net() -> None:
    """Its own imports name no I/O module; loading it (the core with it) loads no
    event loop, TLS, database or ``net/`` module. (The standard ``email`` package
    the core parses messages with loads ``socket`` for itself.)"""
    import pushmail.imap.connection as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    named = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    named |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    io = {"asyncio", "socket", "ssl", "selectors", "sqlite3"}
    assert not {m for m in named if m.split(".")[0] in io or m.startswith("pushmail.net")}
    code = (
        "import sys, pushmail.imap.connection\n"
        "bad = {'asyncio', 'ssl', 'sqlite3'} & set(sys.modules)\n"
        "bad |= {m for m in sys.modules if m.startswith('pushmail.net')}\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
