"""``pushmail watch`` against a real Dovecot (not only against pushmail): mail delivered
by LMTP into Dovecot is announced exactly once on the IDLE path, and in ``auto`` mode
(NOTIFY, which Dovecot 2.3 offers) for two folders on one connection.

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
from pathlib import Path

import pytest
from conftest import Watch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import dovecot  # bench/ is not a package: found through sys.path above

USER, PASSWORD = "alice@example.org", "alice-secret"


@pytest.fixture
def dovecot_server() -> Iterator[dovecot.DovecotInstance]:
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/lmtp").exists():
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    if os.geteuid() != 0:
        pytest.skip("a private Dovecot needs root (its processes switch to a mail user)")
    # Not under pytest's tmp_path: its parents are 0700, and Dovecot's mail processes
    # run as another user that must reach the maildirs.
    with tempfile.TemporaryDirectory(prefix="pm-dovecot-") as work:
        inst = dovecot.DovecotInstance(Path(work), [(USER, PASSWORD)], sessions=10)
        inst.start()
        try:
            yield inst
        finally:
            inst.stop()


def _lmtp(inst: dovecot.DovecotInstance, subject: str) -> None:
    msg = f"From: bob@example.net\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nhello\r\n"
    with smtplib.LMTP("127.0.0.1", inst.lmtp_port) as lmtp:
        lmtp.sendmail("bob@example.net", [USER], msg.encode())


def _watch(
    inst: dovecot.DovecotInstance, factory: Callable[..., Watch], **account: object
) -> Watch:
    return factory(inst.imap_port, account={"username": USER, "password": PASSWORD, **account})


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
