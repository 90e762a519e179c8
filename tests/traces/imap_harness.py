"""Helpers shared by the session, transcript and live-connection tests.

Two levels, both running the real code:

- ``SessionClient`` drives one ``Session`` directly on a store, exactly as the driver
  does (``handlers.run_command``), with no sockets: fast enough for Hypothesis.
- ``LiveServer`` runs the real driver (``ImapConnection``, ``IdleHub``, store thread)
  in an event loop on a background thread, listening on loopback, for what only the
  driver does: IDLE, NOTIFY's unsolicited output, COMPRESS. ``LineClient`` talks to
  it over a plain blocking socket, with a deadline on every read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pushmail.config import Limits
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.local import LocalBus
from pushmail.imap.command_table import check_allowed, parse_command
from pushmail.imap.handlers import run_command
from pushmail.imap.session import ServerInfo, Session
from pushmail.imap.structure import build_cache
from pushmail.net.idle_hub import IdleHub
from pushmail.net.imap_conn import ImapConnection, ImapContext
from pushmail.store.interfaces import Appended, MessageCache, NewMessage, Store, User
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner

PASSWORD = "secret"
T = TypeVar("T")


def message(
    subject: str = "hello", sender: str = "bob@example.org", body: str | None = None
) -> bytes:
    text = f"body of {subject}\r\n" if body is None else body
    return (
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n{text}"
    ).encode()


def add_message(
    store: Store,
    mailbox_id: int,
    subject: str = "hello",
    flags: frozenset[str] = frozenset(),
    body: str | None = None,
    preview: bool = True,
) -> Appended:
    """``preview=False`` stores no PREVIEW, as for a text kept before previews were."""
    raw = message(subject, body=body)
    cache = build_cache(raw)
    if not preview:
        cache = MessageCache(cache.envelope, cache.bodystructure, cache.body)
    return store.append(mailbox_id, NewMessage(raw, cache, flags))


def new_store(path: Path) -> tuple[SqliteStore, User]:
    store = SqliteStore(path / "mail.db")
    user = store.create_user("alice@example.org", "{PLAIN}" + PASSWORD)
    return store, user


class SessionClient:
    """One logged-in session on ``store``; ``cmd`` returns the response lines."""

    def __init__(self, store: Store, user: User) -> None:
        self.store = store
        self.session = Session(ServerInfo(), secure=True, loopback=True)
        self.session.login_succeeded(user)
        self.events: list[MailboxChanged] = []
        self._n = 0

    def cmd(self, text: str) -> list[str]:
        """Run ``text`` (without tag and CRLF); the lines, CRLF stripped."""
        self._n += 1
        return self.raw(f"T{self._n} {text}")

    def raw(self, line: str) -> list[str]:
        cmd = parse_command(line.encode() + b"\r\n")
        check_allowed(self.session.state, cmd)
        _action, out, events = run_command(self.session, cmd, self.store)
        self.events.extend(events)
        return out.decode("utf-8", "replace").split("\r\n")[:-1]

    def unsolicited(self) -> list[str]:
        """What an idling session would be told now."""
        view = self.session.view
        assert view is not None
        return [line.decode() for line in view.refresh(self.store, True)]


# ----------------------------------------------------------------------------- live


class LiveServer:
    """The real driver on a background event loop, on a fresh SQLite store (or on
    the stores ``open_store`` makes, where alice is created)."""

    def __init__(self, path: Path, open_store: Callable[[], Store] | None = None) -> None:
        self.db = path / "mail.db"
        if open_store is None:
            store, self.user = new_store(path)
            store.close()
        else:
            store = open_store()
            self.user = store.create_user("alice@example.org", "{PLAIN}" + PASSWORD)
            store.close()
        self.bus = LocalBus()
        self.loop = asyncio.new_event_loop()
        self.runner = StoreRunner(open_store or (lambda: SqliteStore(self.db)))
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._call(self._start())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> int:
        self.ctx = ImapContext(
            info=ServerInfo("localhost", False, "test"),
            runner=self.runner,
            hub=IdleHub(self.bus, self.loop),
            publisher=self.bus,
            limits=Limits(auth_failure_delay=0.01),
            tls=None,
            auth_pool=ThreadPoolExecutor(max_workers=1),
            connections=set(),
        )
        ctx = self.ctx
        self._server = await self.loop.create_server(
            lambda: ImapConnection(ctx, secure=False), "127.0.0.1", 0
        )
        return int(self._server.sockets[0].getsockname()[1])

    def store_call(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn`` on the server's store thread (as a delivery would)."""
        return self.runner.call_sync(fn)

    def deliver(
        self,
        mailbox: str = "INBOX",
        subject: str = "hello",
        body: str | None = None,
        preview: bool = True,
    ) -> Appended:
        """Append to ``mailbox`` and publish the hint, as delivery or a filter does."""
        uid = self.user.id

        def run(st: Store) -> Appended:
            box = st.get_mailbox(uid, mailbox)
            assert box is not None
            return add_message(st, box.id, subject, body=body, preview=preview)

        app = self.store_call(run)
        self.bus.publish(MailboxChanged(uid, app.mailbox_id, app.modseq, "new"))
        return app

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for conn in list(self.ctx.connections):
                conn.close()
            await self._server.wait_closed()

        self._call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.ctx.auth_pool.shutdown()
        self.runner.close()


@contextlib.contextmanager
def live_server(path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(path)
    try:
        yield srv
    finally:
        srv.close()


class LineClient:
    """A blocking IMAP client socket that reads whole response lines (literals
    included) with a deadline; optionally DEFLATE-compressed after ``compress()``."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.wire_in = 0  # bytes read from the socket (compressed, if so)
        self.wire_out = 0
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self.greeting = self.line()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.wire_out += len(data)
        self.sock.sendall(data)

    def start_compression(self) -> None:
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        if self.buf:
            self.buf = self._inflate.decompress(self.buf)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete line; have {self.buf!r}")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by server; have {self.buf!r}")
        self.wire_in += len(data)
        self.buf += self._inflate.decompress(data) if self._inflate is not None else data

    def line(self, timeout: float | None = None) -> bytes:
        """One response line without CRLF; literals are kept inline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            head, _, self.buf = self.buf.partition(b"\r\n")
            out += head
            if not head.endswith(b"}") or b"{" not in head:
                return out
            size = int(head[head.rindex(b"{") + 1 : -1].rstrip(b"+"))
            while len(self.buf) < size:
                self._fill(deadline)
            out += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def command(self, tag: str, text: str) -> list[bytes]:
        """Send one command; every line up to and including its tagged reply."""
        self.send(f"{tag} {text}\r\n".encode())
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def login(self) -> None:
        reply = self.command("L1", f"LOGIN alice@example.org {PASSWORD}")
        assert reply[-1].startswith(b"L1 OK"), reply
