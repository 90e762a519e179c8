"""Differential test (issue 14): the MIME corpus delivered over LMTP to a private
Dovecot 2.3 and to a real ``pushmail serve``, compared message by message.

What is compared and how: ``bench/mime_diff.py``. Every difference must be a row of
the "Accepted differences from Dovecot" table in docs/extensions.md (with its RFC
reason), and every row must still be needed, so the table is pinned in both ways.

Needs root (Dovecot's processes switch to a mail user) and the Debian packages
dovecot-imapd and dovecot-lmtpd: without them the test is skipped, or fails when
CI=true.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from e2e_server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import dovecot  # bench/ is not a package: found through sys.path above
import mime_diff
from mime_corpus import corpus


def _need_dovecot() -> None:
    reason = ""
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/lmtp").exists():
        reason = "Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)"
    elif os.geteuid() != 0:
        reason = "a private Dovecot needs root (its processes switch to a mail user)"
    if reason and os.environ.get("CI") == "true":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


def test_corpus_against_dovecot(server: Server) -> None:
    _need_dovecot()
    samples = corpus()
    assert len(samples) >= 200
    with tempfile.TemporaryDirectory(prefix="pm-mimediff-dovecot-") as work:
        inst = dovecot.DovecotInstance(Path(work), [(mime_diff.USER, mime_diff.PASSWORD)], 4)
        inst.start()
        try:
            diffs, compared, appended = mime_diff.run_both(
                (inst.imap_port, inst.lmtp_port), (server.imap, server.lmtp), samples
            )
        finally:
            inst.stop()
    # Dovecot takes every message over LMTP; pushmail all but those with lines over
    # 998 octets (RFC 5321 §4.5.3.1.6), which it refuses today and which go in by
    # APPEND instead: the comparison is about what is stored, not how it came.
    assert appended["dovecot"] == []
    assert all(name.endswith("-long-lines") for name in appended["pushmail"])
    print(
        f"{len(samples)} messages, {compared} fields compared, {len(diffs)} differences:",
        dict(Counter(mime_diff.kind_of(d.field) for d in diffs)),
    )
    unexplained, stale = mime_diff.judge(diffs, mime_diff.accepted_rows())
    shown = [
        f"{d.message} {d.field}\n  dovecot:  {d.dovecot}\n  pushmail: {d.pushmail}"
        for d in unexplained[:20]
    ]
    assert not unexplained, f"{len(unexplained)} differences not in the table:\n" + "\n".join(shown)
    assert not stale, f"rows no difference needs any more: {stale}"
