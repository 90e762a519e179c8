"""Differential check of the stored-data extensions of issue 18 against Dovecot: the
MIME corpus (``mime_corpus.py``) delivered over LMTP to a private Dovecot and to
pushmail, then compared over IMAP.

- PREVIEW (RFC 8970): ``FETCH 1:* (PREVIEW)``, text compared message by message.

``python bench/ext_diff.py`` (root, dovecot-imapd and dovecot-lmtpd) prints one JSON
line: messages, fields compared, differences by kind and each one. The e2e test
(tests/e2e/test_ext_dovecot_diff.py) runs the same functions and checks every
difference against the "Accepted differences from Dovecot: stored data" table of
docs/extensions.md, and that every row of it is still needed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from mime_corpus import Sample, corpus
from mime_diff import (
    PASSWORD,
    USER,
    Accepted,
    Difference,
    Imap,
    _show,
    accepted_rows,
    deliver,
    fetch_items,
    judge,
)

TABLE = "### Accepted differences from Dovecot: stored data"


def previews(imap: Imap, samples: list[Sample]) -> dict[str, object]:
    imap.ok(b"SELECT INBOX")
    got = fetch_items(imap.ok(b"FETCH 1:* (PREVIEW)"))
    return {s.name: got.get(n, {}).get(b"PREVIEW", "missing") for n, s in enumerate(samples, 1)}


Fields = dict[str, dict[str, object]]  # message name -> field -> value


def collect(ports: tuple[int, int], samples: list[Sample]) -> tuple[Fields, list[str]]:
    """Deliver the corpus to one server; every field per message, and the samples
    that needed APPEND."""
    imap_port, lmtp_port = ports
    imap = Imap(imap_port)
    try:
        imap.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        appended = deliver(lmtp_port, imap, samples)
        out: Fields = {s.name: {} for s in samples}
        for name, value in previews(imap, samples).items():
            out[name]["PREVIEW"] = value
    finally:
        imap.close()
    return out, appended


def run_both(
    dovecot_ports: tuple[int, int], pushmail_ports: tuple[int, int], samples: list[Sample]
) -> tuple[list[Difference], int, dict[str, list[str]]]:
    """(differences, fields compared, samples each side needed APPEND for)."""
    dove, d_app = collect(dovecot_ports, samples)
    push, p_app = collect(pushmail_ports, samples)
    diffs: list[Difference] = []
    compared = 0
    for s in samples:
        for name in sorted(dove[s.name].keys() | push[s.name].keys()):
            compared += 1
            d, p = dove[s.name].get(name, "missing"), push[s.name].get(name, "missing")
            if d != p:
                diffs.append(Difference(s.name, name, _show(d), _show(p)))
    return diffs, compared, {"dovecot": d_app, "pushmail": p_app}


def rows() -> list[Accepted]:
    return accepted_rows(table=TABLE)


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dovecot
    from pushmail_server import PushmailInstance

    samples = corpus()
    with (
        tempfile.TemporaryDirectory(prefix="pm-extdiff-dovecot-") as dwork,
        tempfile.TemporaryDirectory(prefix="pm-extdiff-") as pwork,
    ):
        dove = dovecot.DovecotInstance(Path(dwork), [(USER, PASSWORD)], sessions=4)
        push = PushmailInstance(Path(pwork), [(USER, PASSWORD)])
        dove.start()
        try:
            push.add_users()
            push.start()
            try:
                diffs, compared, _ = run_both(
                    (dove.imap_port, dove.lmtp_port), (push.imap_port, push.lmtp_port), samples
                )
            finally:
                push.stop()
        finally:
            dove.stop()
    unexplained, stale = judge(diffs, rows())
    print(
        json.dumps(
            {
                "messages": len(samples),
                "compared": compared,
                "differences": dict(Counter(d.field for d in diffs)),
                "unexplained": [[d.message, d.field, d.dovecot, d.pushmail] for d in unexplained],
                "stale_rows": [list(r.messages) for r in stale],
            }
        )
    )
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main())
