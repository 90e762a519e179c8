"""A socket-free IMAP client for session tests, and tests of the login paths.

``Client`` does for one ``Session`` what the driver (``net/imap_conn.py``) does: parse
a complete command, check it against the command table, run it with
``handlers.run_command`` (the same function the driver calls, refresh logic
included), and carry out the actions a handler asks for (password check, SASL
continuation, IDLE). The store is a real ``SqliteStore``; nothing is stubbed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pg_testdb import scratch_database
from pushmail.auth.passwords import verify_password
from pushmail.imap import cmd_auth, handlers
from pushmail.imap.command_table import check_allowed, parse_command
from pushmail.imap.errors import ImapError
from pushmail.imap.parser import parse_tag
from pushmail.imap.session import Action, ServerInfo, Session, State
from pushmail.store.interfaces import Store
from pushmail.store.sqlite import SqliteStore


class Client:
    """One session over a real store, driven line by line."""

    def __init__(self, store: Store, secure: bool = True, loopback: bool = True) -> None:
        self.store = store
        self.session = Session(ServerInfo(), secure=secure, loopback=loopback)
        self.published: list[object] = []
        self.idle_tag: str | None = None
        self.sasl_tag: str | None = None
        self._n = 0

    def send(self, line: bytes | str) -> bytes:
        """Run one complete command (literals inline); return everything sent back."""
        data = line.encode() if isinstance(line, str) else line
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        if self.sasl_tag is not None:
            return self._sasl(data)
        try:
            cmd = parse_command(data)
            check_allowed(self.session.state, cmd)
        except ImapError as err:
            code = f"[{err.code}] " if err.code else ""
            return f"{parse_tag(data) or '*'} BAD {code}{err.text}\r\n".encode()
        action, out, events = handlers.run_command(self.session, cmd, self.store)
        self.published.extend(events)
        return out + self._act(action)

    def _act(self, action: Action | None) -> bytes:
        if action is None:
            return b""
        if action.kind == "verify":
            stored = action.user.password_hash if action.user else "{PLAIN}\x00"
            ok = action.user is not None and verify_password(stored, action.password)
            cmd_auth.finish_login(self.session, action, ok)
            return self.session.take_output()
        if action.kind == "sasl":
            self.sasl_tag = action.tag
            return b"+ \r\n"
        if action.kind == "idle":
            self.idle_tag = action.tag
            return b"+ idling\r\n"
        return b""

    def _sasl(self, data: bytes) -> bytes:
        tag, self.sasl_tag = self.sasl_tag or "", None
        try:
            action = cmd_auth.sasl_response(self.session, tag, data, self.store)
        except ImapError as err:
            self.session.tagged(tag, err.status, err.text, err.code)
            return self.session.take_output()
        return self._act(action)

    def wake(self) -> bytes:
        """What an idling connection sends when a hint arrives (``_refresh``)."""
        assert self.idle_tag is not None and self.session.view is not None
        lines = self.session.view.refresh(self.store, True)
        return b"".join(b"* " + line + b"\r\n" for line in lines)

    def done(self) -> bytes:
        tag, self.idle_tag = self.idle_tag, None
        return f"{tag} OK IDLE terminated\r\n".encode()

    def ok(self, line: bytes | str) -> bytes:
        """Send a command that must succeed; return its output."""
        self._n += 1
        text = line.decode() if isinstance(line, bytes) else line
        tag = text.split(" ", 1)[0]
        out = self.send(line)
        assert re.search(rb"(^|\r\n)" + re.escape(tag.encode()) + rb" OK ", out), out
        return out

    def login(self, user: str = "alice@example.org", pw: str = "alice-pw") -> None:
        self.ok(f'L LOGIN "{user}" "{pw}"')


def untagged(out: bytes) -> list[bytes]:
    """The untagged response lines (without ``* `` and CRLF), literals left inline."""
    return [line[2:] for line in out.split(b"\r\n") if line.startswith(b"* ")]


def status_line(out: bytes, tag: str) -> bytes:
    for line in out.split(b"\r\n"):
        if line.startswith(tag.encode() + b" "):
            return line
    raise AssertionError(f"no tagged reply for {tag}: {out!r}")


def raw_message(subject: str, body: str = "hello\r\n", extra: str = "") -> bytes:
    return (
        f"From: Sender <sender@example.com>\r\nTo: alice@example.org\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.com>\r\n"
        f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n{extra}\r\n{body}"
    ).encode()


def append(client: Client, mailbox: str, raw: bytes, flags: str = "") -> bytes:
    fl = f"({flags}) " if flags else ""
    return client.ok(f"AP APPEND {mailbox} {fl}{{{len(raw)}}}\r\n".encode() + raw + b"\r\n")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore]:
    """Each session test runs on both store backends (PostgreSQL: a scratch
    database, skipped without a server, failing in CI)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            s: Store = SqliteStore(tmp_path / "store.sqlite3")
        else:
            from pushmail.store.postgres import PostgresStore

            s = PostgresStore(stack.enter_context(scratch_database()))
        stack.callback(s.close)
        s.create_user("alice@example.org", "{PLAIN}alice-pw")
        s.create_user("bob@example.org", "{PLAIN}bob-pw")
        # Typed as the SQLite store the tests were written against; both backends
        # implement the same protocol, and the tests use nothing more.
        yield s  # type: ignore[misc]


# -- the login paths ------------------------------------------------------------


def test_login_and_capabilities_change_with_state(store: SqliteStore) -> None:
    c = Client(store)
    caps = untagged(c.ok("a CAPABILITY"))[0]
    assert b"AUTH=PLAIN" in caps and b"LOGINDISABLED" not in caps
    assert b"STARTTLS" not in caps  # already secure
    assert b"NO [AUTHENTICATIONFAILED]" in c.send('b LOGIN alice@example.org "wrong"')
    assert b"NO [AUTHENTICATIONFAILED]" in c.send("b2 LOGIN nobody@example.org x")
    assert c.session.state is State.NOT_AUTHENTICATED and c.session.auth_failures == 2
    out = c.ok("c LOGIN ALICE@example.org alice-pw")
    assert b"[CAPABILITY IMAP4rev1" in out and c.session.state is State.AUTHENTICATED
    assert b"BAD" in c.send("d LOGIN alice@example.org alice-pw")  # not in this state


def test_plaintext_refused_without_tls_off_loopback(store: SqliteStore) -> None:
    c = Client(store, secure=False, loopback=False)
    caps = untagged(c.ok("a CAPABILITY"))[0]
    assert b"LOGINDISABLED" in caps and b"STARTTLS" in caps and b"AUTH=PLAIN" not in caps
    assert b"a NO [PRIVACYREQUIRED]" in c.send("a LOGIN alice@example.org alice-pw")
    assert b"b NO [PRIVACYREQUIRED]" in c.send("b AUTHENTICATE PLAIN")
    assert c.session.state is State.NOT_AUTHENTICATED and c.sasl_tag is None
    local = Client(store, secure=False, loopback=True)
    caps = untagged(local.ok("a CAPABILITY"))[0]
    assert b"AUTH=PLAIN" in caps and b"STARTTLS" in caps
    local.login()


def test_authenticate_plain_with_and_without_initial_response(store: SqliteStore) -> None:
    token = base64.b64encode(b"\x00alice@example.org\x00alice-pw").decode()
    c = Client(store)
    c.ok(f"a AUTHENTICATE PLAIN {token}")
    assert c.session.user is not None and c.session.user.address == "alice@example.org"
    c2 = Client(store)
    assert c2.send("a AUTHENTICATE PLAIN") == b"+ \r\n"
    assert c2.send(token).startswith(b"a OK")
    c3 = Client(store)
    c3.send("a AUTHENTICATE PLAIN")
    assert c3.send("*").startswith(b"a BAD")
    c3.send("b AUTHENTICATE PLAIN")
    assert c3.send("not base64!").startswith(b"b BAD")
    proxy = base64.b64encode(b"bob@example.org\x00alice@example.org\x00alice-pw").decode()
    assert b"NO [AUTHORIZATIONFAILED]" in c3.send(f"c AUTHENTICATE PLAIN {proxy}")
    assert b"NO [CANNOT]" in c3.send("d AUTHENTICATE CRAM-MD5")
    assert c3.session.state is State.NOT_AUTHENTICATED
