"""Differential test (issue 18): the stored-data extensions (PREVIEW, …) of a real
``pushmail serve`` against a private Dovecot 2.3, on the MIME corpus delivered over
LMTP to both. What is compared: ``bench/ext_diff.py``. Every difference must be a row
of the "Accepted differences from Dovecot: stored data" table in docs/extensions.md,
and every row must still be needed. Needs root and dovecot-imapd/-lmtpd (skipped
without them, failed when CI=true), as tests/e2e/test_mime_dovecot_diff.py."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from e2e_server import Server
from test_mime_dovecot_diff import _need_dovecot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import dovecot  # bench/ is not a package: found through sys.path above
import ext_diff
from mime_corpus import corpus


def test_stored_data_against_dovecot(server: Server) -> None:
    _need_dovecot()
    samples = corpus()
    with tempfile.TemporaryDirectory(prefix="pm-extdiff-dovecot-") as work:
        inst = dovecot.DovecotInstance(
            Path(work), [(ext_diff.USER, ext_diff.PASSWORD)], sessions=4
        )
        inst.start()
        try:
            diffs, compared, _ = ext_diff.run_both(
                (inst.imap_port, inst.lmtp_port), (server.imap, server.lmtp), samples
            )
        finally:
            inst.stop()
    assert compared >= len(samples)
    # Dovecot 2.3 has no OBJECTID, so pushmail's answers are pinned here instead.
    pinned = {"EMAILID": "'(objectid)'", "THREADID": "None", "MAILBOXID in CREATE": "'(objectid)'"}
    objectid = [d for d in diffs if d.field in pinned or d.message == "*"]
    assert len(objectid) == 2 * len(samples) + 6
    for d in objectid:
        assert d.pushmail == pinned.get(d.field, "True"), d
    unexplained, stale = ext_diff.judge(diffs, ext_diff.rows())
    shown = [
        f"{d.message} {d.field}\n  dovecot:  {d.dovecot}\n  pushmail: {d.pushmail}"
        for d in unexplained[:20]
    ]
    assert not unexplained, f"{len(unexplained)} differences not in the table:\n" + "\n".join(shown)
    assert not stale, f"rows no difference needs any more: {stale}"
