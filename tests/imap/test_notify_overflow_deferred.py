"""NOTIFICATIONOVERFLOW (RFC 5465 §5.8) in the real driver: a hint that overflows the
queue while a command of the session runs on the store thread must not switch the
session's NOTIFY off under that command's feet; the overflow is reported once the
command has finished, after its tagged reply."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, LiveServer, live_server

from pushmail.events.interfaces import MailboxChanged
from pushmail.net.imap_conn import ImapConnection
from pushmail.store.interfaces import Store

T = TypeVar("T")


def on_loop(server: LiveServer, fn: Callable[[], T]) -> T:
    """``fn()`` on the server's event loop, after everything already queued there
    (the hub dispatches hints with ``call_soon_threadsafe``, in order)."""

    async def run() -> T:
        return fn()

    return asyncio.run_coroutine_threadsafe(run(), server.loop).result(10)


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10  # only against a hang, never a measurement
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


def test_overflow_during_a_command_waits_until_it_finishes(tmp_path: Path) -> None:
    with live_server(tmp_path) as server, LineClient(server.port) as client:
        client.login()
        server.ctx.limits = replace(server.ctx.limits, notify_max_pending=0)
        reply = client.command("n", "NOTIFY SET (personal (MessageNew MessageExpunge))")
        assert reply[-1].startswith(b"n OK"), reply
        (conn,) = on_loop(server, lambda: list(server.ctx.connections))
        assert isinstance(conn, ImapConnection)

        box = server.store_call(lambda st: st.get_mailbox(server.user.id, "INBOX"))
        assert box is not None

        # Occupy the store thread, so that the next command waits there, running.
        gate, entered = threading.Event(), threading.Event()

        def hold(_st: Store) -> None:
            entered.set()
            gate.wait(30)

        blocker = threading.Thread(target=server.store_call, args=(hold,))
        blocker.start()
        try:
            assert entered.wait(10)
            client.send(b"a NOOP\r\n")
            wait_for(lambda: on_loop(server, lambda: conn._running), "NOOP running")
            server.bus.publish(MailboxChanged(server.user.id, box.id, 1, "new"))
            # The hint has been handled (over the limit), but NOTIFY is still on.
            assert on_loop(server, lambda: conn.session.notify is not None)
        finally:
            gate.set()
            blocker.join(10)
        assert client.until("a") == [b"a OK NOOP completed"]
        assert client.line().startswith(b"* OK [NOTIFICATIONOVERFLOW] ")
        assert on_loop(server, lambda: conn.session.notify is None)
