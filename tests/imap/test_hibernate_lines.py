"""What a hibernated session is sent (net/hibernate.py) is what the core says a live
one gets: the new-mail lines (EXISTS, and RECENT but not under IMAP4rev2), the
keepalive and the autologout BYE. Records write to one end of a socket pair."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_session_harness import Client, append, raw_message

from pushmail.config import Limits
from pushmail.events.local import LocalBus
from pushmail.imap.connection import BYE_AUTOLOGOUT, ConnectionMachine
from pushmail.imap.session import ServerInfo
from pushmail.net.hibernate import Hibernator
from pushmail.net.hibernated import READONLY, REV2, Hibernated
from pushmail.net.homes import RecordFields
from pushmail.net.idle_hub import IdleHub
from pushmail.net.imap_conn import ImapConnection, ImapContext
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner

_OPEN: list[socket.socket] = []


@pytest.fixture
def hib(tmp_path: Path) -> Iterator[Hibernator]:
    """A worker's hibernator on a loop that never needs to run here."""
    loop = asyncio.new_event_loop()
    runner = StoreRunner(lambda: SqliteStore(tmp_path / "store.sqlite3"))
    ctx = ImapContext(
        info=ServerInfo(),
        runner=runner,
        hub=IdleHub(LocalBus(), loop),
        publisher=LocalBus(),
        limits=Limits(),
        tls=None,
        auth_pool=ThreadPoolExecutor(max_workers=1),
        connections=set(),
    )
    h = Hibernator(ctx, loop, ImapConnection)
    yield h
    h.close(b"")  # closes the records' ends
    while _OPEN:
        _OPEN.pop().close()
    runner.close()
    ctx.auth_pool.shutdown()
    loop.close()


def record(hib: Hibernator, **f: object) -> tuple[Hibernated, socket.socket]:
    """A record over one end of a socket pair (the fixture closes both ends)."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    _OPEN.append(theirs)
    base: dict[str, object] = dict(
        user_id=1, mailbox_id=1, modseq=1, uidnext=1, exists=0, bits=0,
        last_activity=time.monotonic(), last_write=time.monotonic(), tag="I",
        recent=array("I"), tls=None, keywords=0,
    )  # fmt: skip
    base.update(f)
    return Hibernated.restore(ours.detach(), hib, RecordFields(**base)), theirs  # type: ignore[arg-type]


@pytest.mark.parametrize("rev2", [False, True], ids=["rev1", "rev2"])
def test_new_mail_lines_asleep_equal_a_live_sessions(
    tmp_path: Path, hib: Hibernator, rev2: bool
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.create_user("alice@example.org", "{PLAIN}alice-pw")
    live, other = Client(store), Client(store)
    live.login()
    other.login()
    append(other, "INBOX", raw_message("before"))
    if rev2:
        live.ok("e ENABLE IMAP4rev2")
    live.ok("s SELECT INBOX")
    live.send("i IDLE")
    view = live.session.view
    assert view is not None and view.rev2 == rev2
    # The record a session idling here would shrink to, taken before the new mail.
    rec, client = record(
        hib,
        mailbox_id=view.mailbox_id,
        modseq=view.modseq,
        uidnext=view.uidnext,
        exists=view.exists,
        bits=(REV2 if rev2 else 0) | (READONLY if view.readonly else 0),
        recent=array("I", view.recent),
        keywords=len(view.keywords),
    )
    append(other, "INBOX", raw_message("one"))
    append(other, "INBOX", raw_message("two"))
    changes = store.changes_since(view.mailbox_id, view.modseq)
    awake = live.wake()  # the live session's refresh, which claims \Recent
    assert hib._apply_new_only(rec, changes, view.recent_floor)
    asleep = client.recv(4096)
    assert asleep == awake
    assert (b"RECENT" in asleep) is not rev2 and b"* 3 EXISTS\r\n" in asleep
    os.close(rec.fd)  # never registered: the hibernator does not hold it
    store.close()


def test_keepalive_and_autologout_asleep_are_the_cores(hib: Hibernator) -> None:
    now, wall = time.monotonic(), time.time()
    idle = ConnectionMachine(ServerInfo(), Limits(), secure=False)
    idle.mode = "idle"
    awake = idle.keepalive()
    due, dk = record(hib, last_write=now - 10_000)  # a keepalive long overdue
    gone, dg = record(hib, user_id=2, last_activity=now - 10_000)  # past autologout
    hib._register(due)
    hib._register(gone)
    hib.sweep(now, 60.0, 1800.0, wall)
    assert dk.recv(4096) == awake == b"* OK Still here\r\n"
    assert dg.recv(4096) == BYE_AUTOLOGOUT
    assert dg.recv(1) == b""  # and the socket was closed
