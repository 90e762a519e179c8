"""Helpers (imported by ``conftest.py``): real SMTP, submission and LMTP listeners on
loopback, on their own event loop thread, backed by a real SQLite store, for
``smtplib`` to talk to."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from pushmail.auth.passwords import hash_password
from pushmail.config import Config, Endpoint, Limits
from pushmail.events.interfaces import MailboxChanged
from pushmail.smtp.servers import SmtpListener, start_smtp_servers
from pushmail.store.interfaces import Store
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner
from pushmail.transport.tls import ensure_certificate, server_context

T = TypeVar("T")

PASSWORD = "s3cret-pw"
ANY = Endpoint("127.0.0.1", 0)


@dataclass
class Recorder:
    """A publisher that remembers what it was told."""

    events: list[MailboxChanged] = field(default_factory=list)

    def publish(self, event: MailboxChanged) -> None:
        self.events.append(event)


@dataclass
class Smtpd:
    config: Config
    runner: StoreRunner
    publisher: Recorder
    listeners: list[SmtpListener]
    loop: asyncio.AbstractEventLoop
    client_tls: ssl.SSLContext

    def port(self, name: str) -> int:
        (listener,) = [x for x in self.listeners if x.name == name]
        address = listener.address
        assert isinstance(address, tuple)
        return address[1]

    def store(self, fn: Callable[[Store], T]) -> T:
        return self.runner.call_sync(fn)

    def inbox(self, address: str) -> list[bytes]:
        """Every message in the user's INBOX, raw, in UID order."""

        def read(store: Store) -> list[bytes]:
            user = store.get_user(address)
            assert user is not None
            box = store.get_mailbox(user.id, "INBOX")
            assert box is not None
            return [store.get_raw(box.id, m.uid) for m in store.list_messages(box.id)]

        return self.store(read)


def make_config(tmp_path: Path, **overrides: object) -> Config:
    base: dict[str, object] = {
        "data_dir": tmp_path,
        "hostname": "mx.test",
        "imap": None,
        "imaps": None,
        "smtp": ANY,
        "submission": ANY,
        "lmtp": ANY,
        "domains": ("example.org",),
        "limits": Limits(max_message=20_000, auth_failure_delay=0.0, max_auth_failures=3),
    }
    base.update(overrides)
    return Config(**base)  # type: ignore[arg-type]


@pytest.fixture
def smtpd_factory(tmp_path: Path) -> Iterator[Callable[..., Smtpd]]:
    started: list[tuple[Smtpd, threading.Thread]] = []

    def start(open_store: Callable[[], Store] | None = None, **overrides: object) -> Smtpd:
        """Listeners on a fresh SQLite store, or on the stores ``open_store`` makes."""
        config = make_config(tmp_path, **overrides)
        runner = StoreRunner(open_store or (lambda: SqliteStore(config.db_path)))
        hashed = hash_password(PASSWORD)
        for address in ("alice@example.org", "bob@example.org", "carol@other.test"):
            runner.call_sync(lambda s, a=address: s.create_user(a, hashed))
        cert, key = ensure_certificate(tmp_path, "localhost")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        publisher = Recorder()
        coro = start_smtp_servers(config, runner, publisher, server_context(cert, key))
        listeners = asyncio.run_coroutine_threadsafe(coro, loop).result(10)
        client_tls = ssl.create_default_context(cafile=str(cert))
        server = Smtpd(config, runner, publisher, listeners, loop, client_tls)
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        asyncio.run_coroutine_threadsafe(_shutdown(server.listeners), server.loop).result(10)
        server.loop.call_soon_threadsafe(server.loop.stop)
        thread.join(10)
        server.loop.close()
        server.runner.close()


async def _shutdown(listeners: list[SmtpListener]) -> None:
    for listener in listeners:
        await listener.aclose()
    current = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not current]
    if rest:
        await asyncio.wait(rest, timeout=5)


@pytest.fixture
def smtpd(smtpd_factory: Callable[..., Smtpd]) -> Smtpd:
    return smtpd_factory()
