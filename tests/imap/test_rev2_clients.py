"""Stock clients still work with every extension advertised (IMAP4rev2, QRESYNC,
NOTIFY, COMPRESS=DEFLATE, ...): Python's ``imaplib`` and ``imapclient``, through the
real driver."""

from __future__ import annotations

import imaplib
import sys
from pathlib import Path

from imapclient import IMAPClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import PASSWORD, live_server


def test_capabilities_advertise_the_extensions(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        m = imaplib.IMAP4("127.0.0.1", srv.port)
        try:
            m.login("alice@example.org", PASSWORD)
            caps = set(m.capability()[1][0].decode().upper().split())
            assert {"IMAP4REV1", "IMAP4REV2", "CONDSTORE", "QRESYNC", "NOTIFY"} <= caps
            assert {"COMPRESS=DEFLATE", "ESEARCH", "SEARCHRES", "LIST-STATUS"} <= caps
            assert {"BINARY", "STATUS=SIZE", "LITERAL+", "SASL-IR", "LIST-EXTENDED"} <= caps
        finally:
            m.logout()


def test_imaplib_session(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        for i in range(3):
            srv.deliver("INBOX", f"m{i}")
        m = imaplib.IMAP4("127.0.0.1", srv.port)
        try:
            m.login("alice@example.org", PASSWORD)
            assert m.select("INBOX") == ("OK", [b"3"])
            typ, data = m.search(None, "ALL")
            assert (typ, data) == ("OK", [b"1 2 3"])
            typ, data = m.uid("STORE", "2", "+FLAGS", "(\\Seen)")
            assert typ == "OK"
            typ, data = m.fetch("1:3", "(UID FLAGS)")
            assert typ == "OK" and len(data) == 3
        finally:
            m.logout()


def test_imapclient_condstore_and_qresync(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        for i in range(4):
            srv.deliver("INBOX", f"m{i}")
        c = IMAPClient("127.0.0.1", port=srv.port, ssl=False)
        try:
            c.login("alice@example.org", PASSWORD)
            assert c.enable("QRESYNC") == [b"QRESYNC"]
            info = c.select_folder("INBOX")
            hm = info[b"HIGHESTMODSEQ"]
            c.set_flags([2], [b"\\Flagged"])
            changed = c.fetch([1, 2, 3, 4], ["FLAGS"], modifiers=[f"CHANGEDSINCE {hm}"])
            assert list(changed) == [2]
            assert b"\\Flagged" in changed[2][b"FLAGS"]
            c.idle()
            srv.deliver("INBOX", "during idle")
            events = c.idle_check(timeout=10)
            c.idle_done()
            assert (5, b"EXISTS") in events
        finally:
            c.logout()
