"""Differential check of SORT, THREAD and ESORT (RFC 5256, 5957, 5267) against
Dovecot: the corpus of ``sort_corpus.py`` delivered over LMTP to a private Dovecot
and to pushmail, then every command of ``commands()`` sent to both and the answers
compared.

Messages go in by APPEND with fixed INTERNALDATEs, not LMTP: each server's own
trace header would change SIZE, and its own clock ARRIVAL. A difference is reported
per command (kind ``order``, ``membership`` or ``answer``); the table "Accepted
differences from Dovecot: SORT and THREAD" in docs/extensions.md would list the
accepted ones (commands and kinds) with their justification.

``python bench/sort_diff.py [--messages N]`` (root, dovecot-imapd, dovecot-lmtpd)
prints one JSON line: messages, commands, differences by kind, the unexplained ones.
The e2e test (tests/e2e/test_sort_dovecot_diff.py) runs the same functions on a
smaller corpus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

from mime_diff import PASSWORD, USER, Accepted, Difference, Imap, accepted_rows, judge
from sort_corpus import internal_date, messages

TABLE = "### Accepted differences from Dovecot: SORT and THREAD"
SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM",
             "DISPLAYTO")


def commands() -> list[bytes]:
    out = [b"SORT (%s) UTF-8 ALL" % k.encode() for k in SORT_KEYS]
    out += [b"SORT (REVERSE %s) UTF-8 ALL" % k.encode() for k in SORT_KEYS]
    out += [
        b"SORT (FROM DATE) UTF-8 ALL",
        b"SORT (REVERSE SUBJECT REVERSE DATE) US-ASCII ALL",
        b"SORT (SIZE REVERSE TO) UTF-8 ALL",
        b"SORT (DISPLAYFROM SUBJECT) UTF-8 ALL",
        b"SORT (DATE) UTF-8 SUBJECT meeting",
        b"UID SORT (SUBJECT) UTF-8 1:150",
        b"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL",
        b"SORT RETURN (ALL) (SUBJECT) UTF-8 ALL",
        b"UID SORT RETURN (MIN MAX ALL COUNT) (REVERSE SIZE) UTF-8 LARGER 500",
        b"SORT (REVERSE ARRIVAL REVERSE CC) UTF-8 NOT FROM a",
        b"SORT RETURN () (DATE) UTF-8 FROM bob",
        b"THREAD ORDEREDSUBJECT UTF-8 ALL",
        b"THREAD REFERENCES UTF-8 ALL",
        b"UID THREAD REFERENCES UTF-8 ALL",
        b"THREAD REFERENCES UTF-8 1:100",
        b"UID THREAD ORDEREDSUBJECT UTF-8 LARGER 500",
        b"THREAD REFERENCES UTF-8 OR OR 1:50 100:180 UID 250:290",
        b"THREAD ORDEREDSUBJECT UTF-8 NOT 30:200",
    ]
    return out


def deliver(imap: Imap, raws: list[bytes]) -> None:
    """APPEND each message with its INTERNALDATE (``sort_corpus.internal_date``):
    unlike LMTP, no server adds its own trace header (which would change SIZE) and
    both get the same arrival times (ARRIVAL)."""
    for i, raw in enumerate(raws):
        date = internal_date(i).encode()
        imap.ok(b'APPEND INBOX "' + date + b'" {%d+}\r\n' % len(raw) + raw)


def collect(imap_port: int, raws: list[bytes]) -> dict[bytes, bytes]:
    """Each command's untagged answer (SORT/THREAD/ESEARCH line, tag removed)."""
    imap = Imap(imap_port)
    try:
        imap.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        deliver(imap, raws)
        imap.ok(b"SELECT INBOX")
        out: dict[bytes, bytes] = {}
        for command in commands():
            lines, status = imap.run(command)
            got = [ln for ln in lines if ln.startswith((b"* SORT", b"* THREAD", b"* ESEARCH"))]
            text = b" | ".join(re.sub(rb'\(TAG "[^"]*"\) ', b"", ln.strip()) for ln in got)
            out[command] = text if b"OK" in status.split()[:2] else b"failed: " + status
    finally:
        imap.close()
    return out


def _sort_numbers(answer: bytes) -> list[int] | None:
    if not answer.startswith(b"* SORT"):
        return None
    return [int(x) for x in answer.split()[2:]]


def run_both(dovecot: int, pushmail: int, raws: list[bytes]) -> tuple[list[Difference], int]:
    """(differences, commands compared): one Difference per differing command, its
    ``message`` the command, its ``field`` the kind (SORT: ``order``, ``membership``;
    THREAD/ESORT: ``answer``)."""
    dove = collect(dovecot, raws)
    push = collect(pushmail, raws)
    diffs: list[Difference] = []
    for command in commands():
        d, p = dove[command], push[command]
        if d == p:
            continue
        dn, pn = _sort_numbers(d), _sort_numbers(p)
        field = "answer"
        if dn is not None and pn is not None:
            field = "order" if sorted(dn) == sorted(pn) else "membership"
        diffs.append(Difference(command.decode(), field, d.decode(errors="replace")[:300],
                                p.decode(errors="replace")[:300]))
    return diffs, len(commands())


def rows() -> list[Accepted]:
    return accepted_rows(table=TABLE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5256)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dovecot
    from pushmail_server import PushmailInstance

    raws = messages(args.messages, args.seed)
    with (
        tempfile.TemporaryDirectory(prefix="pm-sortdiff-dovecot-") as dwork,
        tempfile.TemporaryDirectory(prefix="pm-sortdiff-") as pwork,
    ):
        dove = dovecot.DovecotInstance(Path(dwork), [(USER, PASSWORD)], sessions=4)
        push = PushmailInstance(Path(pwork), [(USER, PASSWORD)])
        dove.start()
        try:
            push.add_users()
            push.start()
            try:
                diffs, compared = run_both(dove.imap_port, push.imap_port, raws)
            finally:
                push.stop()
        finally:
            dove.stop()
    unexplained, stale = judge(diffs, rows())
    print(json.dumps({
        "messages": len(raws),
        "commands": compared,
        "differences": dict(Counter(d.field for d in diffs)),
        "unexplained": [[d.message, d.field, d.dovecot, d.pushmail] for d in unexplained],
        "stale_rows": [list(r.messages) for r in stale],
    }))
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
