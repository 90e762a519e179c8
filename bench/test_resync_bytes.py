"""Tests of the resync-bytes benchmark's parsing, plus a small real run per server.

Run with ``.venv/bin/pytest bench/test_resync_bytes.py``. The end-to-end case needs
root on Debian for the Dovecot half (skipped otherwise, pushmail alone is then run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from resync_bytes import VARIANTS, _compact, _uid_set, apply_lines, ratios


def test_uid_sets_round_trip() -> None:
    uids = [1, 2, 3, 7, 9, 10, 42]
    assert _compact(uids) == "1:3,7,9:10,42"
    assert list(_uid_set(_compact(uids).encode())) == uids
    assert list(_uid_set(b"5:3")) == [3, 4, 5]  # RFC 3501 allows either order


def test_apply_lines_folds_fetch_vanished_and_codes() -> None:
    state = {1: frozenset(), 2: frozenset({"\\Seen"}), 3: frozenset()}
    codes = apply_lines(
        state,
        [
            b"* OK [UIDVALIDITY 77] UIDs valid",
            b"* OK [HIGHESTMODSEQ 900] Highest",
            b"* VANISHED (EARLIER) 1,3:3",
            b"* 2 FETCH (UID 4 FLAGS (\\Recent) MODSEQ (901))",
            b"* 1 FETCH (FLAGS (\\Seen \\Flagged) UID 2)",
        ],
    )
    assert codes == {"UIDVALIDITY": 77, "HIGHESTMODSEQ": 900}
    assert state == {2: frozenset({"\\Seen", "\\Flagged"}), 4: frozenset()}


def test_ratio_is_dovecot_over_pushmail() -> None:
    push: dict[str, object] = {"1": {"plain": 100, "qresync": 10}}
    dove: dict[str, object] = {"1": {"plain": 150, "qresync": 10}}
    assert ratios(push, dove) == {"1": {"plain": 1.5, "qresync": 1.0}}


def test_small_run_end_to_end() -> None:
    with_dovecot = os.geteuid() == 0 and shutil.which("apt-get") is not None
    argv = ["--messages", "200", "--n", "3", "--timeout", "240"]
    if not with_dovecot:
        argv.append("--skip-dovecot")
    script = Path(__file__).with_name("resync_bytes.py")
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    sides = ["pushmail", "dovecot"] if with_dovecot else ["pushmail"]
    for side in sides:
        row = result[side]["3"]
        assert set(row) == set(VARIANTS)
        # 200 messages' flags cost more than three changes' worth of QRESYNC answer.
        assert row["qresync"] < row["plain"] and row["plain_compress"] < row["plain"]
    assert ("ratio" in result) == with_dovecot
