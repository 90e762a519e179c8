"""Time per SORT/THREAD command, pushmail against Dovecot in the same run (issue 18).

Both servers run at once and get the same ``--messages`` messages of
``sort_corpus.py`` (APPENDed, pipelined); then each command of ``COMMANDS`` is timed
from the client (from sending it to reading its tagged reply, over loopback),
alternating between the servers so that the shared machine's load falls on both.

- ``first``: the first time the command is sent after the messages arrived;
- ``repeat``: the median of ``--rounds`` more sends on the unchanged mailbox
  (pushmail answers these from its cache keyed on the mailbox's HIGHESTMODSEQ;
  Dovecot from its own sort and thread indexes);
- ``changed``: the median of ``--rounds`` sends each after a flag change of
  message 1 (``STORE 1 +FLAGS``/``-FLAGS``, untimed), which invalidates pushmail's
  cache for searches other than ALL (not these: ``SORT … ALL`` orders the view's
  messages, whatever their flags);
- ``arrived``: the median of ``--rounds`` sends each after one more message was
  APPENDed and seen by the session (untimed): no cached answer applies, so this is
  the cost of computing it (pushmail reads only the new message's keys).

``python bench/sort_bench.py --messages 10000`` (root, dovecot-imapd) prints one
JSON object: per server and command, the three figures in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mime_diff import PASSWORD, USER, Imap
from sort_corpus import internal_date, messages

COMMANDS = (b"SORT (DATE) UTF-8 ALL", b"SORT (SUBJECT) UTF-8 ALL", b"THREAD REFERENCES UTF-8 ALL")


def append_all(imap: Imap, raws: list[bytes], batch: int = 200) -> None:
    """APPEND with LITERAL+, ``batch`` commands in flight at a time."""
    for start in range(0, len(raws), batch):
        chunk = raws[start:start + batch]
        data = b"".join(
            b'P%d APPEND INBOX "%s" {%d+}\r\n' % (start + i, internal_date(start + i).encode(),
                                                 len(raw)) + raw + b"\r\n"
            for i, raw in enumerate(chunk)
        )
        imap.sock.sendall(data)
        for i in range(len(chunk)):
            while True:
                line = imap._response()
                if line.startswith(b"P%d " % (start + i)):
                    if b" OK " not in line[:20]:
                        raise RuntimeError(f"APPEND failed: {line!r}")
                    break


def timed(imap: Imap, command: bytes) -> float:
    start = time.perf_counter()
    imap.ok(command)
    return (time.perf_counter() - start) * 1000.0


def _connect(port: int, raws: list[bytes]) -> Imap:
    imap = Imap(port)
    imap.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    append_all(imap, raws)
    imap.ok(b"SELECT INBOX")
    return imap


def measure(ports: dict[str, int], raws: list[bytes], rounds: int) -> dict[str, object]:
    """Both servers run at once and each timed send alternates between them, so a
    change of the machine's load (it is shared) falls on both alike."""
    conns = {name: _connect(port, raws) for name, port in ports.items()}
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in ports}
    try:
        for command in COMMANDS:
            runs: dict[str, dict[str, list[float]]] = {
                name: {"first": [], "repeat": [], "changed": [], "arrived": []} for name in ports
            }
            for name, imap in conns.items():
                runs[name]["first"].append(timed(imap, command))
            for n in range(rounds):
                for name, imap in conns.items():
                    runs[name]["repeat"].append(timed(imap, command))
                for name, imap in conns.items():
                    imap.ok(b"STORE 1 %sFLAGS (\\Flagged)" % (b"+" if n % 2 == 0 else b"-"))
                    runs[name]["changed"].append(timed(imap, command))
                raw = raws[n % len(raws)]
                for name, imap in conns.items():
                    imap.ok(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
                    imap.ok(b"NOOP")
                    runs[name]["arrived"].append(timed(imap, command))
            for name in ports:
                out[name][command.decode()] = {
                    kind: round(statistics.median(values), 2)
                    for kind, values in runs[name].items()
                }
    finally:
        for imap in conns.values():
            imap.close()
    return dict(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dovecot
    from pushmail_server import PushmailInstance

    raws = messages(args.messages)
    result: dict[str, object] = {"messages": args.messages, "rounds": args.rounds}
    with (
        tempfile.TemporaryDirectory(prefix="pm-sortbench-dovecot-") as dwork,
        tempfile.TemporaryDirectory(prefix="pm-sortbench-") as pwork,
    ):
        dove = dovecot.DovecotInstance(Path(dwork), [(USER, PASSWORD)], sessions=2)
        push = PushmailInstance(Path(pwork), [(USER, PASSWORD)])
        dove.start()
        try:
            push.add_users()
            push.start()
            try:
                ports = {"dovecot": dove.imap_port, "pushmail": push.imap_port}
                result.update(measure(ports, raws, args.rounds))
            finally:
                push.stop()
        finally:
            dove.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
