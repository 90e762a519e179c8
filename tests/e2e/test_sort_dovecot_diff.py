"""Differential test (issue 18): SORT, THREAD and ESORT of a real ``pushmail serve``
against a private Dovecot 2.3, on 300 messages of ``bench/sort_corpus.py`` (every sort
key, REVERSE, both THREAD algorithms, ESORT; the commands of ``bench/sort_diff.py``).
Every difference must be a row of the "Accepted differences from Dovecot: SORT and
THREAD" table of docs/extensions.md (there are none today), and every row must still
be needed. Needs root and dovecot-imapd (skipped without, failed when CI=true)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from e2e_server import Server
from test_mime_dovecot_diff import _need_dovecot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import dovecot  # bench/ is not a package: found through sys.path above
import sort_diff
from mime_diff import PASSWORD, USER
from sort_corpus import messages


def test_sort_and_thread_against_dovecot(server: Server) -> None:
    _need_dovecot()
    raws = messages(300)
    with tempfile.TemporaryDirectory(prefix="pm-sortdiff-dovecot-") as work:
        inst = dovecot.DovecotInstance(Path(work), [(USER, PASSWORD)], sessions=2)
        inst.start()
        try:
            diffs, compared = sort_diff.run_both(inst.imap_port, server.imap, raws)
        finally:
            inst.stop()
    assert compared == len(sort_diff.commands())
    unexplained, stale = sort_diff.judge(diffs, sort_diff.rows())
    shown = [f"{d.message} {d.field}\n  dovecot:  {d.dovecot}\n  pushmail: {d.pushmail}"
             for d in unexplained[:10]]
    assert not unexplained, f"{len(unexplained)} differences not in the table:\n" + "\n".join(
        shown
    )
    assert not stale, f"rows no difference needs any more: {stale}"
