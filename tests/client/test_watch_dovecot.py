"""``pushmail watch`` against a real Dovecot (not only against pushmail), one test per
strategy: mail delivered by LMTP into Dovecot is announced exactly once on the IDLE path
(``mode = "idle"``), on the NOTIFY path (``auto``: Dovecot 2.3 offers NOTIFY, so two
folders share one connection; INBOX mail comes with its headers in Dovecot's NOTIFY
push, and a Dovecot made to refuse the FETCH items is asked again without them), and on
the polling path (``auto`` against a Dovecot whose
``imap_capability`` leaves IDLE out). And the resync after a restart goes by QRESYNC,
which Dovecot offers too, with the same exactly-once result as against pushmail.

The private Dovecot comes from ``bench/dovecot.py`` (own config, ports and maildirs in a
temporary directory). It needs root (its processes switch to a mail user) and the
Debian packages dovecot-imapd and dovecot-lmtpd; without them these tests are skipped.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import smtplib
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from conftest import Watch, expunge, last_stopped

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import dovecot  # bench/ is not a package: found through sys.path above

USER, PASSWORD = "alice@example.org", "alice-secret"


# Dovecot 2.3's post-login capability list, less IDLE. ``imap_capability`` replaces the
# list both before login (imap-login) and after it (imap), as the test checks live.
NO_IDLE = (
    "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY "
    "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE "
    "UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC "
    "ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY "
    "PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY\n"
)


class _Dovecot(dovecot.DovecotInstance):
    """The bench's private Dovecot, with lines added to the end of its dovecot.conf."""

    extra = ""

    def write_config(self) -> None:
        dovecot.DovecotInstance.write_config(self)
        with self.config_path.open("a") as f:
            f.write(self.extra)


@contextmanager
def _running(extra: str = "") -> Iterator[_Dovecot]:
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/lmtp").exists():
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    if os.geteuid() != 0:
        pytest.skip("a private Dovecot needs root (its processes switch to a mail user)")
    # Not under pytest's tmp_path: its parents are 0700, and Dovecot's mail processes
    # run as another user that must reach the maildirs.
    with tempfile.TemporaryDirectory(prefix="pm-dovecot-") as work:
        inst = _Dovecot(Path(work), [(USER, PASSWORD)], sessions=10)
        inst.extra = extra
        inst.start()
        try:
            yield inst
        finally:
            inst.stop()


@pytest.fixture
def dovecot_server() -> Iterator[dovecot.DovecotInstance]:
    with _running() as inst:
        yield inst


@pytest.fixture
def dovecot_without_idle() -> Iterator[dovecot.DovecotInstance]:
    with _running(NO_IDLE) as inst:
        yield inst


def _lmtp(inst: dovecot.DovecotInstance, subject: str) -> None:
    msg = f"From: bob@example.net\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nhello\r\n"
    with smtplib.LMTP("127.0.0.1", inst.lmtp_port) as lmtp:
        lmtp.sendmail("bob@example.net", [USER], msg.encode())


def _watch(
    inst: dovecot.DovecotInstance,
    factory: Callable[..., Watch],
    port: int = 0,
    **account: object,
) -> Watch:
    login = {"username": USER, "password": PASSWORD}
    return factory(port or inst.imap_port, account={**login, **account})


def test_idle_against_dovecot_announces_lmtp_mail_once(
    dovecot_server: dovecot.DovecotInstance, watch_factory: Callable[..., Watch]
) -> None:
    _lmtp(dovecot_server, "old")  # before the first start: not announced (no backlog)
    w = _watch(dovecot_server, watch_factory, mode="idle")
    w.start()
    assert any(e["event"] == "watching" and e["via"] == "idle" for e in w.events())
    _lmtp(dovecot_server, "first")
    _lmtp(dovecot_server, "second")
    w.wait_subjects("first", "second")
    _lmtp(dovecot_server, "third")  # the connection still hears after those fetches
    w.wait_subjects("third")
    assert w.stop() == 0
    assert sorted(w.subjects()) == ["first", "second", "third"]
    [stopped] = [e for e in w.events() if e["event"] == "stopped"]
    assert stopped["notified"] == 3


def test_auto_mode_against_dovecot_two_folders(
    dovecot_server: dovecot.DovecotInstance, watch_factory: Callable[..., Watch]
) -> None:
    with imaplib.IMAP4("127.0.0.1", dovecot_server.imap_port) as m:
        m.login(USER, PASSWORD)
        assert m.create("Alerts")[0] == "OK"
    w = _watch(dovecot_server, watch_factory, folders=["INBOX", "Alerts"])
    w.start()
    w.wait_for(lambda evs: sum(e["event"] == "watching" for e in evs) >= 2)
    # Dovecot 2.3 offers NOTIFY, so both folders share one connection.
    [strategy] = [e for e in w.events() if e["event"] == "strategy"]
    assert strategy["notify"] == ["INBOX", "Alerts"]
    assert {e["via"] for e in w.events() if e["event"] == "watching"} == {"notify"}
    _lmtp(dovecot_server, "to-inbox")
    msg = f"From: carol@example.net\r\nTo: {USER}\r\nSubject: appended\r\n\r\nhi\r\n"
    with imaplib.IMAP4("127.0.0.1", dovecot_server.imap_port) as m:
        m.login(USER, PASSWORD)
        assert m.append("Alerts", "", None, msg.encode())[0] == "OK"
    w.wait_subjects("to-inbox", "appended")
    assert w.stop() == 0
    by_folder = sorted((m["folder"], m["subject"]) for m in w.messages())
    assert by_folder == [("Alerts", "appended"), ("INBOX", "to-inbox")]


def test_auto_mode_polls_a_dovecot_without_idle(
    dovecot_without_idle: dovecot.DovecotInstance, watch_factory: Callable[..., Watch]
) -> None:
    with imaplib.IMAP4("127.0.0.1", dovecot_without_idle.imap_port) as m:
        assert "IDLE" not in m.capabilities  # before login
        m.login(USER, PASSWORD)
        typ, data = m.capability()  # after login
        assert typ == "OK" and b"IDLE" not in data[0].split()
    _lmtp(dovecot_without_idle, "old")
    w = _watch(dovecot_without_idle, watch_factory)
    w.start()
    [strategy] = [e for e in w.events() if e["event"] == "strategy"]
    assert strategy["poll"] == ["INBOX"] and strategy["idle"] == []
    assert "notify" not in strategy  # NOTIFY is offered, but without IDLE it is not used
    assert [e["via"] for e in w.events() if e["event"] == "watching"] == ["poll"]
    _lmtp(dovecot_without_idle, "first")
    _lmtp(dovecot_without_idle, "second")
    w.wait_subjects("first", "second")
    _lmtp(dovecot_without_idle, "third")
    w.wait_subjects("third")
    assert w.stop() == 0
    assert sorted(w.subjects()) == ["first", "second", "third"]
    assert last_stopped(w)["notified"] == 3


def test_restart_resyncs_by_qresync_against_dovecot(
    dovecot_server: dovecot.DovecotInstance, watch_factory: Callable[..., Watch]
) -> None:
    proxy = FaultProxy(dovecot_server.imap_port)  # only for its wire log
    try:
        w = _watch(dovecot_server, watch_factory, proxy.port)
        w.start()
        _lmtp(dovecot_server, "a")
        _lmtp(dovecot_server, "b")
        w.wait_subjects("a", "b")
        assert w.stop() == 0
        for subject in ("c", "d", "e"):  # UIDs 3, 4, 5 while the watcher is down
            _lmtp(dovecot_server, subject)
        expunge(dovecot_server.imap_port, USER, PASSWORD, "a", "d")
        before = len(proxy.sent_lines())
        w.start()
        w.wait_subjects("c", "e")
        _lmtp(dovecot_server, "f")
        w.wait_subjects("f")
        assert w.stop() == 0
        wire = proxy.sent_lines()[before:]
    finally:
        proxy.close()
    assert sorted(w.subjects()) == ["a", "b", "c", "e", "f"]
    assert any(b"ENABLE QRESYNC" in line for line in wire), wire
    assert any(b"EXAMINE INBOX (QRESYNC (" in line for line in wire), wire
    assert any(b"UID FETCH 3,5 (" in line for line in wire), wire
    stopped = last_stopped(w)
    assert stopped["qresync"] >= 1
    assert stopped["vanished"] >= 2  # "a" and "d" (a server may name more, RFC 7162)


def _create_alerts(inst: dovecot.DovecotInstance) -> None:
    with imaplib.IMAP4("127.0.0.1", inst.imap_port) as m:
        m.login(USER, PASSWORD)
        assert m.create("Alerts")[0] == "OK"


def test_inbox_mail_comes_in_dovecots_notify_push_with_nothing_sent(
    dovecot_server: dovecot.DovecotInstance, watch_factory: Callable[..., Watch]
) -> None:
    """Dovecot 2.3 takes the MessageNew FETCH items and pushes them during IDLE: a
    message delivered to INBOX is announced, with its headers, and the client sends
    nothing at all for it."""
    _create_alerts(dovecot_server)
    proxy = FaultProxy(dovecot_server.imap_port)  # only for its wire log
    try:
        folders = ["INBOX", "Alerts"]
        w = _watch(dovecot_server, watch_factory, proxy.port, folders=folders, idle_renew=600.0)
        w.start()
        w.wait_for(lambda evs: sum(e["event"] == "watching" for e in evs) >= 2)
        assert w.count("notify_fetch_refused") == 0
        before = len(b"\r\n".join(proxy.sent_lines()))
        _lmtp(dovecot_server, "pushed")
        w.wait_subjects("pushed")
        assert b"\r\n".join(proxy.sent_lines())[before:] == b""
        assert w.count("notify_push_missing") == 0
        assert w.stop() == 0
    finally:
        proxy.close()
    [m] = w.messages()
    assert (m["folder"], m["from"]) == ("INBOX", "bob@example.net")


def test_dovecot_refusing_the_fetch_items_falls_back(
    dovecot_server: dovecot.DovecotInstance, watch_factory: Callable[..., Watch]
) -> None:
    """Made to refuse them (an unknown FETCH item): the watcher asks again without,
    says so in an event, and fetches INBOX mail as on the IDLE path."""
    _create_alerts(dovecot_server)
    proxy = FaultProxy(dovecot_server.imap_port)
    proxy.rewrite_up = (b"(MessageNew (UID ", b"(MessageNew (NOSUCHITEM ")
    try:
        w = _watch(dovecot_server, watch_factory, proxy.port, folders=["INBOX", "Alerts"])
        w.start()
        w.wait_for(lambda evs: sum(e["event"] == "watching" for e in evs) >= 2)
        [refused] = [e for e in w.events() if e["event"] == "notify_fetch_refused"]
        assert w.count("notify_refused") == 0
        print("Dovecot said:", refused["reason"])
        _lmtp(dovecot_server, "fetched")
        w.wait_subjects("fetched")
        assert any(b"UID FETCH" in line for line in proxy.sent_lines())
        assert w.stop() == 0
    finally:
        proxy.close()
    assert w.subjects() == ["fetched"]
