"""Differential check of the stored-data extensions of issue 18 against Dovecot: the
MIME corpus (``mime_corpus.py``) delivered over LMTP to a private Dovecot and to
pushmail, then compared over IMAP.

- PREVIEW (RFC 8970): ``FETCH 1:* (PREVIEW)``, text compared message by message.
- OBJECTID (RFC 8474), shape and stability, not values (each server picks its own):
  per message whether EMAILID is one objectid and what THREADID is; then, as
  message ``*``, whether MAILBOXID comes with CREATE and SELECT and survives
  RENAME, whether EMAILID survives COPY and MOVE, and whether two APPENDs of the
  same text share one.

``python bench/ext_diff.py`` (root, dovecot-imapd and dovecot-lmtpd) prints one JSON
line: messages, fields compared, differences by kind and each one. The e2e test
(tests/e2e/test_ext_dovecot_diff.py) runs the same functions and checks every
difference against the "Accepted differences from Dovecot: stored data" table of
docs/extensions.md, and that every row of it is still needed.
"""

from __future__ import annotations

import json
import re
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


_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")


def shape(value: object) -> object:
    """``(id)`` with ``id`` an RFC 8474 objectid: "(objectid)"; anything else as is."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], bytes):
        return "(objectid)" if _OBJECTID.fullmatch(value[0]) else value
    return value


def unsupported(imap: Imap) -> str | None:
    """"no OBJECTID" when the server does not advertise RFC 8474 (Dovecot 2.3 does
    not): then every OBJECTID field is that, one difference per field."""
    caps = b" ".join(imap.ok(b"CAPABILITY")).upper().split()
    return None if b"OBJECTID" in caps else "no OBJECTID"


def object_ids(imap: Imap, samples: list[Sample]) -> dict[str, dict[str, object]]:
    if (missing := unsupported(imap)) is not None:
        return {s.name: {"EMAILID": missing, "THREADID": missing} for s in samples}
    got = fetch_items(imap.ok(b"FETCH 1:* (EMAILID THREADID)"))
    return {
        s.name: {
            "EMAILID": shape(got.get(n, {}).get(b"EMAILID", "missing")),
            "THREADID": shape(got.get(n, {}).get(b"THREADID", "missing")),
        }
        for n, s in enumerate(samples, 1)
    }


def _code(lines: list[bytes], status: bytes, name: bytes) -> bytes | None:
    """The value of response code ``name`` in ``lines`` or the tagged ``status``."""
    for text in [*lines, status]:
        m = re.search(rb"\[" + name + rb" \(([^)]*)\)\]", text)
        if m:
            return m.group(1)
    return None


def _mailboxid(imap: Imap, name: bytes) -> bytes | None:
    for line in imap.ok(b"STATUS " + name + b" (MAILBOXID)"):
        m = re.search(rb"MAILBOXID \(([^)]*)\)", line)
        if m:
            return m.group(1)
    return None


def _emailid(imap: Imap, box: bytes) -> bytes | None:
    imap.ok(b"SELECT " + box)
    value = fetch_items(imap.ok(b"FETCH 1 (EMAILID)")).get(1, {}).get(b"EMAILID")
    return value[0] if isinstance(value, list) and value and isinstance(value[0], bytes) else None


def stability(imap: Imap, raw: bytes) -> dict[str, object]:
    """Facts about MAILBOXID and EMAILID across operations (see module docstring)."""
    if (missing := unsupported(imap)) is not None:
        names = ("CREATE", "SELECT")
        keys = [f"MAILBOXID in {n}" for n in names] + ["MAILBOXID kept by RENAME"]
        keys += [f"EMAILID kept by {n}" for n in ("COPY", "MOVE")]
        return dict.fromkeys([*keys, "EMAILID same for identical APPENDs"], missing)
    created, status = imap.run(b"CREATE ext1")
    made = _code(created, status, b"MAILBOXID")
    before = _mailboxid(imap, b"ext1")
    imap.ok(b"RENAME ext1 ext2")
    after = _mailboxid(imap, b"ext2")
    picked = _code(imap.ok(b"SELECT ext2"), b"", b"MAILBOXID")
    imap.ok(b"CREATE ext3")
    for _ in range(2):
        imap.ok(b"APPEND ext2 {%d+}\r\n" % len(raw) + raw)
    imap.ok(b"SELECT ext2")
    ids = fetch_items(imap.ok(b"FETCH 1:2 (EMAILID)"))
    first = _emailid(imap, b"ext2")
    imap.ok(b"COPY 1 ext3")
    copied = _emailid(imap, b"ext3")
    imap.ok(b"SELECT ext2")
    imap.ok(b"MOVE 1 ext3")
    imap.ok(b"SELECT ext3")
    moved = fetch_items(imap.ok(b"FETCH 2 (EMAILID)")).get(2, {}).get(b"EMAILID")
    return {
        "MAILBOXID in CREATE": shape([made]) if made else None,
        "MAILBOXID in SELECT": picked is not None and picked == before,
        "MAILBOXID kept by RENAME": before is not None and before == after,
        "EMAILID kept by COPY": first is not None and copied == first,
        "EMAILID kept by MOVE": moved == [first],
        "EMAILID same for identical APPENDs": ids[1][b"EMAILID"] == ids[2][b"EMAILID"],
    }


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
        for name, fields in object_ids(imap, samples).items():
            out[name].update(fields)
        out["*"] = stability(imap, samples[0].raw)
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
    for message in [s.name for s in samples] + ["*"]:
        for name in sorted(dove[message].keys() | push[message].keys()):
            compared += 1
            d, p = dove[message].get(name, "missing"), push[message].get(name, "missing")
            if d != p:
                diffs.append(Difference(message, name, _show(d), _show(p)))
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
