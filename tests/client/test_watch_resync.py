"""Resync after a restart against pushmail, by each of the three ways (``mailbox``):
QRESYNC where offered, else CONDSTORE, else plain UID ranges. Mail delivered while the
watcher was down, some of it expunged again (and some older mail expunged too), must be
announced exactly once on restart: the survivors, never the expunged, never the mail
announced before. The fault proxy's wire log shows which resync went over the wire; the
capability stripping makes pushmail look like a server without QRESYNC / CONDSTORE."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from faultproxy import FaultProxy

from conftest import ConfiguredServer, Watch, deliver, expunge, last_stopped

STRIP: dict[str, bytes | tuple[bytes, ...]] = {
    "qresync": b"",
    "condstore": b" QRESYNC",
    "uid": (b" QRESYNC", b" CONDSTORE"),
}


def assert_exactly_once(w: Watch, *subjects: str) -> None:
    got = w.subjects()
    assert sorted(got) == sorted(subjects), got


@pytest.mark.parametrize("method", list(STRIP))
def test_restart_after_missed_mail_and_expunges(
    method: str,
    server: ConfiguredServer,
    proxy: FaultProxy,
    watch_factory: Callable[..., Watch],
) -> None:
    proxy.strip = STRIP[method]
    w = watch_factory(proxy.port)
    w.start()
    deliver(server, "a")
    deliver(server, "b")
    w.wait_subjects("a", "b")
    assert w.stop() == 0
    # While the watcher is down: three arrive (UIDs 3, 4, 5), one of them and one
    # already announced message are expunged again.
    for subject in ("c", "d", "e"):
        deliver(server, subject)
    expunge(server.imap, "alice@example.org", "alice-secret", "a", "d")
    before = len(proxy.sent_lines())
    w.start()
    w.wait_subjects("c", "e")
    deliver(server, "f")  # heard live: the resync above is over
    w.wait_subjects("f")
    assert w.stop() == 0
    assert_exactly_once(w, "a", "b", "c", "e", "f")
    wire = proxy.sent_lines()[before:]
    stopped = last_stopped(w)
    if method == "qresync":
        assert any(b"ENABLE QRESYNC" in line for line in wire)
        # The stored UIDVALIDITY and HIGHESTMODSEQ went with the EXAMINE ...
        assert any(b"EXAMINE INBOX (QRESYNC (" in line for line in wire), wire
        # ... and only the two survivors' headers were fetched, by exact UID.
        assert any(b"UID FETCH 3,5 (" in line for line in wire), wire
        assert not any(b"UID FETCH 3:* " in line for line in wire), wire
        assert stopped["qresync"] >= 1
        assert stopped["vanished"] == 2  # "a" and "d"
    else:
        assert not any(b"QRESYNC" in line for line in wire), wire
        assert any(b"UID FETCH 3:* (" in line for line in wire), wire
        assert stopped["qresync"] == 0
    if method == "uid":
        assert not any(b"CONDSTORE" in line for line in wire), wire
