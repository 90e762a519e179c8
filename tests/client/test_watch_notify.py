"""The NOTIFY strategy (RFC 5465) against pushmail: every folder on ONE connection, mail
in any of them announced once, across a reset link; and the fallback to one IDLE
connection per folder when the server does not offer NOTIFY.

The connection count comes from the fault proxy: ``connections`` counts every accepted
connection (the watcher's capability probe is the first), ``open_count()`` those open now.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from faultproxy import FaultProxy

from conftest import ConfiguredServer, Watch, deliver, last_stopped

FOLDERS = ["INBOX", "Alerts"]


@contextmanager
def _imap(server: ConfiguredServer) -> Iterator[imaplib.IMAP4]:
    """Another client of the same user: it files mail into folders by APPEND and COPY."""
    with imaplib.IMAP4("127.0.0.1", server.imap) as m:  # LOGOUT and close on exit
        m.login("alice@example.org", "alice-secret")
        yield m


def _append(server: ConfiguredServer, folder: str, subject: str) -> None:
    msg = f"From: carol@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n"
    with _imap(server) as m:
        typ, _ = m.append(folder, "", None, msg.encode())
        assert typ == "OK"


def _create_alerts(server: ConfiguredServer) -> None:
    with _imap(server) as m:
        typ, _ = m.create("Alerts")
        assert typ == "OK"


def _in(w: Watch, folder: str) -> list[str]:
    return [m["subject"] for m in w.messages() if m["folder"] == folder and m["notified"]]


def _watching_all(w: Watch, via: str) -> None:
    w.wait_for(
        lambda evs: (
            {e["folder"] for e in evs if e["event"] == "watching" and e["via"] == via}
            >= set(FOLDERS)
        )
    )


def test_two_folders_are_watched_on_one_connection(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    _create_alerts(server)
    w = watch_factory(proxy.port, account={"folders": FOLDERS})
    w.start()
    _watching_all(w, "notify")
    [strategy] = [e for e in w.events() if e["event"] == "strategy"]
    assert strategy["notify"] == FOLDERS and strategy["idle"] == []
    deliver(server, "to-inbox")
    _append(server, "Alerts", "appended")
    w.wait_subjects("to-inbox", "appended")
    # Delivered to INBOX, then copied into Alerts by another session: once per folder.
    deliver(server, "copied")
    w.wait_subjects("copied")
    with _imap(server) as m:
        m.select("INBOX")
        typ, data = m.uid("SEARCH", "SUBJECT", "copied")
        assert typ == "OK" and data[0]
        typ, _ = m.uid("COPY", data[0].decode(), "Alerts")
        assert typ == "OK"
    w.wait_for(lambda evs: "copied" in _in(w, "Alerts"))
    assert sorted(_in(w, "INBOX")) == ["copied", "to-inbox"]
    assert sorted(_in(w, "Alerts")) == ["appended", "copied"]
    # The capability probe, then one connection for both folders, and it is still open.
    assert proxy.connections == 2
    assert proxy.open_count() == 1
    assert w.stop() == 0


def test_without_notify_each_folder_idles_on_its_own_connection(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    _create_alerts(server)
    proxy.strip = b" NOTIFY"  # the capability lists lose NOTIFY
    w = watch_factory(proxy.port, account={"folders": FOLDERS})
    w.start()
    _watching_all(w, "idle")
    [strategy] = [e for e in w.events() if e["event"] == "strategy"]
    assert strategy["idle"] == FOLDERS and "notify" not in strategy
    _append(server, "Alerts", "via-idle")
    w.wait_subjects("via-idle")
    assert _in(w, "Alerts") == ["via-idle"]
    assert proxy.open_count() == 2


def test_refused_notify_set_falls_back_to_idle_per_folder(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    _create_alerts(server)
    # An event pushmail does not offer: it answers NOTIFY SET with NO [BADEVENT ...].
    proxy.rewrite_up = (b"MessageExpunge)", b"AnnotationChange)")
    w = watch_factory(proxy.port, account={"folders": FOLDERS})
    w.start()
    _watching_all(w, "idle")
    assert w.count("notify_refused") == 1
    strategies = [e for e in w.events() if e["event"] == "strategy"]
    assert [s.get("notify") for s in strategies] == [FOLDERS, None]
    assert strategies[1]["idle"] == FOLDERS
    _append(server, "Alerts", "after-refusal")
    w.wait_subjects("after-refusal")
    assert _in(w, "Alerts") == ["after-refusal"]
    assert proxy.open_count() == 2


def test_mode_idle_does_not_use_notify(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    _create_alerts(server)
    w = watch_factory(proxy.port, account={"folders": FOLDERS, "mode": "idle"})
    w.start()
    _watching_all(w, "idle")
    assert proxy.open_count() == 2


def test_reset_during_notify_mode_is_exactly_once(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    _create_alerts(server)
    w = watch_factory(proxy.port, account={"folders": FOLDERS})
    w.start()
    _watching_all(w, "notify")
    _append(server, "Alerts", "before")
    w.wait_subjects("before")
    proxy.set_mode("blackhole")  # new connections hang, so the mail below waits for us
    proxy.reset_all()
    _append(server, "Alerts", "during")
    deliver(server, "during-inbox")
    w.wait_for(lambda evs: any(e["event"] == "disconnected" for e in evs))
    proxy.set_mode("pass")
    w.wait_subjects("during", "during-inbox")
    w.wait_for(lambda evs: sum(e["event"] == "watching" for e in evs) >= 4)
    _append(server, "Alerts", "after")
    w.wait_subjects("after")
    assert sorted(_in(w, "Alerts")) == ["after", "before", "during"]
    assert _in(w, "INBOX") == ["during-inbox"]
    assert proxy.open_count() == 1
    assert w.stop() == 0


def _wire(proxy: FaultProxy) -> bytes:
    """Everything the watcher sent so far, lines joined by CRLF."""
    return b"\r\n".join(proxy.sent_lines())


def _sent_since(proxy: FaultProxy, before: int) -> bytes:
    return _wire(proxy)[before:]


def test_mail_in_the_kept_folder_comes_in_the_push_with_nothing_sent(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    """INBOX stays selected under NOTIFY with the FETCH items (RFC 5465 §5.2): a new
    message arrives with UID and headers and the client sends not one byte (no DONE,
    no EXAMINE, no FETCH); another folder still goes by STATUS."""
    _create_alerts(server)
    w = watch_factory(proxy.port, account={"folders": FOLDERS, "idle_renew": 600.0})
    w.start()
    _watching_all(w, "notify")
    [strategy] = [e for e in w.events() if e["event"] == "strategy"]
    assert strategy["selected"] == "INBOX"
    wire = _wire(proxy)
    assert b"NOTIFY SET (SELECTED (MessageNew (UID RFC822.SIZE BODY.PEEK[" in wire
    before = len(wire)
    deliver(server, "pushed-1", sender="boss@work.example")
    w.wait_subjects("pushed-1")
    deliver(server, "pushed-2")
    w.wait_subjects("pushed-2")
    assert _sent_since(proxy, before) == b""
    [m] = [m for m in w.messages() if m["subject"] == "pushed-1"]
    assert m["from"] == "boss@work.example" and m["folder"] == "INBOX" and m["size"] > 0
    _append(server, "Alerts", "by-status")  # the other folder: DONE, EXAMINE + FETCH
    w.wait_subjects("by-status")
    sent = _sent_since(proxy, before)
    # DONE; then the visit and the way back, pipelined; back by a plain EXAMINE.
    assert re.search(rb"DONE\r\n\S+ EXAMINE Alerts\r\n\S+ UID FETCH [^\r]+\r\n"
                     rb"\S+ EXAMINE INBOX\r\n\S+ IDLE", sent), sent  # fmt: skip
    deliver(server, "pushed-3")  # back in INBOX, pushes again
    w.wait_subjects("pushed-3")
    assert sorted(_in(w, "INBOX")) == ["pushed-1", "pushed-2", "pushed-3"]
    assert _in(w, "Alerts") == ["by-status"]
    assert w.stop() == 0
    assert last_stopped(w)["pushed"] == 3


def test_server_refusing_the_fetch_items_falls_back_to_fetching(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    """A NOTIFY that refuses FETCH items: asked again without them (one event), INBOX
    stays selected, and its mail is fetched as on the IDLE path."""
    _create_alerts(server)
    proxy.rewrite_up = (b"(MessageNew (UID ", b"(MessageNew (NOSUCHITEM ")
    w = watch_factory(proxy.port, account={"folders": FOLDERS, "idle_renew": 600.0})
    w.start()
    _watching_all(w, "notify")
    assert w.count("notify_fetch_refused") == 1 and w.count("notify_refused") == 0
    before = len(_wire(proxy))
    deliver(server, "fetched")
    w.wait_subjects("fetched")
    sent = _sent_since(proxy, before)
    assert b"DONE" in sent and b"UID FETCH" in sent and b"EXAMINE" not in sent
    _append(server, "Alerts", "alert")
    w.wait_subjects("alert")
    assert _in(w, "INBOX") == ["fetched"] and _in(w, "Alerts") == ["alert"]
    assert proxy.open_count() == 1


def test_no_kept_folder_watches_every_folder_by_status(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    _create_alerts(server)
    account = {"folders": FOLDERS, "idle_renew": 600.0, "notify_selected": ""}
    w = watch_factory(proxy.port, account=account)
    w.start()
    _watching_all(w, "notify")
    before = len(_wire(proxy))
    deliver(server, "inbox-by-status")
    w.wait_subjects("inbox-by-status")
    sent = _sent_since(proxy, before)
    assert b"EXAMINE INBOX" in sent and b"UNSELECT" in sent
    _append(server, "Alerts", "alerts-by-status")
    w.wait_subjects("alerts-by-status")
    assert _in(w, "INBOX") == ["inbox-by-status"]
