"""NOTIFY through the real driver: the issue's check (one STATUS line for mail filed
into another folder, with no command running and no IDLE), and that a NOTIFY session
hears changes whenever no command runs, not only during IDLE (RFC 5465 §3)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, live_server


def eventually(cond: Callable[[], bool]) -> bool:
    """The driver acts on a reply right after writing it, on its own thread."""
    deadline = time.monotonic() + 10
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def test_status_for_mail_filed_into_another_folder(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as cl:
        cl.login()
        reply = cl.command(
            "n1",
            "NOTIFY SET (INBOXES (MessageNew MessageExpunge))"
            " (PERSONAL (MessageNew MessageExpunge))",
        )
        assert reply == [b"n1 OK NOTIFY completed"]
        app = srv.deliver("Junk", "filed by a filter")  # not INBOX, no IDLE, no command
        line = cl.line()
        assert line.startswith(b"* STATUS Junk (MESSAGES 1 UIDNEXT %d " % (app.uid + 1))
        # Exactly one line: the next thing on the wire is our NOOP's reply.
        assert cl.command("n2", "NOOP") == [b"n2 OK NOOP completed"]


def test_inbox_delivery_and_condstore_status(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as cl:
        cl.login()
        cl.command("e", "ENABLE CONDSTORE")
        cl.command("n1", "NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
        app = srv.deliver("INBOX")
        line = cl.line()
        assert line.startswith(b"* STATUS INBOX (MESSAGES 1 ")
        assert line.endswith(b" HIGHESTMODSEQ %d)" % app.modseq)
        srv.deliver("Junk")  # PERSONAL was not asked for: nothing
        assert cl.command("n2", "NOOP") == [b"n2 OK NOOP completed"]


def test_notify_none_stops_and_logout_unwatches(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        with LineClient(srv.port) as cl:
            cl.login()
            cl.command("n1", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
            assert eventually(lambda: srv.bus.listener_count(srv.user.id) == 1)
            cl.command("n2", "NOTIFY NONE")
            assert eventually(lambda: srv.bus.listener_count(srv.user.id) == 0)
            srv.deliver("Junk")
            assert cl.command("n3", "NOOP") == [b"n3 OK NOOP completed"]
            cl.command("n4", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
            cl.command("n5", "LOGOUT")
        assert eventually(lambda: srv.bus.listener_count(srv.user.id) == 0)


def test_selected_mailbox_changes_arrive_without_idle(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, LineClient(srv.port) as cl:
        cl.login()
        cl.command("s", "SELECT INBOX")
        cl.command("n", "NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge))")
        srv.deliver("INBOX")
        got = [cl.line() for _ in range(3)]
        assert got == [b"* 1 EXISTS", b"* 1 RECENT", b"* 1 FETCH (UID 1 FLAGS (\\Recent))"]


def test_selected_fetch_items_arrive_while_idle(tmp_path: Path) -> None:
    """RFC 5465 §5.1/§3: IDLE is allowed under NOTIFY, and the MessageNew FETCH items
    of the SELECTED group belong to the push whether or not the client idles. The IDLE
    refresh used to report the EXISTS on its own, after which NOTIFY found nothing new
    and the items never came."""
    with live_server(tmp_path) as srv, LineClient(srv.port) as cl:
        cl.login()
        cl.command("s", "EXAMINE INBOX")
        cl.command("n", "NOTIFY SET (SELECTED (MessageNew (UID RFC822.SIZE) MessageExpunge))")
        cl.send(b"i IDLE\r\n")
        assert cl.line() == b"+ idling"
        app = srv.deliver("INBOX")
        got = [cl.line()]  # the push is one write: what follows it is DONE's answer
        cl.send(b"DONE\r\n")
        got += cl.until("i")
        assert got[0] == b"* 1 EXISTS", got
        fetches = [line for line in got if b" FETCH " in line]
        assert len(fetches) == 1, got
        assert fetches[0].startswith(b"* 1 FETCH (UID %d RFC822.SIZE " % app.uid), got
        assert got[-1] == b"i OK IDLE terminated"
