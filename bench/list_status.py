"""``LIST "" * RETURN (STATUS (MESSAGES UNSEEN))`` over many folders, pushmail
against Dovecot in the same run (issue 18). Prints one JSON line.

Both servers get the same ``--folders`` folders (``f000`` … plus INBOX) with
``--messages`` messages spread over them (APPENDed with LITERAL+, pipelined; every
third one ``\\Seen`` so UNSEEN is not just MESSAGES). Then one client per server
sends the command once unmeasured (``cold``) and ``--runs`` times measured,
alternating between the servers so that the shared machine's load falls on both:
the figure is the median wall time per command as the client sees it, from
sending it to reading its tagged OK; the server's CPU time over the measured runs
is reported per command too. Both answers are checked to carry one STATUS per
folder with the same counts.

    .venv/bin/python bench/list_status.py [--folders 200] [--messages 10000] [--runs 7]

Needs root and dovecot-imapd (bench/dovecot.py installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dovecot
from mime_diff import PASSWORD, USER, Imap
from proctools import cpu_seconds, descendants
from pushmail_server import PushmailInstance
from sort_corpus import messages

COMMAND = b'LIST "" * RETURN (STATUS (MESSAGES UNSEEN))'
_STATUS = re.compile(rb'^\* STATUS "?([^" ]+)"? \(MESSAGES (\d+) UNSEEN (\d+)\)')


def folder(i: int) -> bytes:
    return b"f%03d" % i


def populate(imap: Imap, folders: int, raws: list[bytes], batch: int = 200) -> None:
    """CREATE the folders, then APPEND message ``i`` to folder ``i % folders``
    (every third one ``\\Seen``), ``batch`` commands in flight at a time."""
    for i in range(folders):
        imap.ok(b"CREATE " + folder(i))
    for start in range(0, len(raws), batch):
        chunk = raws[start:start + batch]
        imap.sock.sendall(b"".join(
            b"P%d APPEND %s %s{%d+}\r\n" % (
                start + i, folder((start + i) % folders),
                b"(\\Seen) " if (start + i) % 3 == 0 else b"", len(raw)) + raw + b"\r\n"
            for i, raw in enumerate(chunk)
        ))
        for i in range(len(chunk)):
            while True:
                line = imap._response()
                if line.startswith(b"P%d " % (start + i)):
                    if b" OK " not in line[:20]:
                        raise RuntimeError(f"APPEND failed: {line!r}")
                    break


def answer(untagged: list[bytes]) -> dict[bytes, tuple[int, int]]:
    found = {}
    for line in untagged:
        m = _STATUS.match(line)
        if m:
            found[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return found


def measure(servers: dict[str, tuple[int, int]], folders: int, raws: list[bytes],
            runs: int) -> dict[str, object]:
    conns = {}
    for name, (port, _) in servers.items():
        imap = Imap(port)
        imap.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        t0 = time.monotonic()
        populate(imap, folders, raws)
        dovecot.log(f"{name}: loaded in {time.monotonic() - t0:.1f} s")
        conns[name] = imap
    times: dict[str, list[float]] = {name: [] for name in servers}
    cpu0: dict[str, float] = {}
    answers = {}
    try:
        for i in range(runs + 1):
            for name, imap in conns.items():
                pid = servers[name][1]
                if i == 1:
                    # descendants() lists the root too: naming it again counted a one-process
                    # server (pushmail) twice, and its CPU figures were double (before 2026-12-06).
                    cpu0[name] = cpu_seconds(descendants(pid))
                t0 = time.perf_counter()
                untagged = imap.ok(COMMAND)
                times[name].append(time.perf_counter() - t0)
                answers[name] = answer(untagged)
        out: dict[str, object] = {}
        for name, (_, pid) in servers.items():
            cpu = cpu_seconds(descendants(pid)) - cpu0[name]
            out[name] = {
                "cold_ms": round(times[name][0] * 1000, 1),
                "median_ms": round(statistics.median(times[name][1:]) * 1000, 1),
                "runs_ms": [round(t * 1000, 1) for t in times[name][1:]],
                "server_cpu_ms_per_command": round(cpu / runs * 1000, 1),
            }
    finally:
        for imap in conns.values():
            imap.close()
    # Only the benchmark's folders: the servers' default folders differ.
    per = {name: {k: v for k, v in a.items() if re.fullmatch(rb"f\d+", k)}
           for name, a in answers.items()}
    first, *rest = per.values()
    assert len(first) == folders, (len(first), folders)
    assert all(a == first for a in rest), "the servers' STATUS answers differ"
    assert sum(m for m, _ in first.values()) == len(raws)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    raws = messages(args.messages)
    version = dovecot.ensure_installed()
    out: dict[str, object] = {"command": COMMAND.decode(), "folders": args.folders,
                              "messages": args.messages, "runs": args.runs}
    with (
        tempfile.TemporaryDirectory(prefix="pm-liststatus-dovecot-") as dwork,
        tempfile.TemporaryDirectory(prefix="pm-liststatus-") as pwork,
    ):
        dove = dovecot.DovecotInstance(Path(dwork), [(USER, PASSWORD)], sessions=2)
        push = PushmailInstance(Path(pwork), [(USER, PASSWORD)])
        dove.start()
        try:
            push.add_users()
            push.start()
            try:
                servers = {f"dovecot {version}": (dove.imap_port, dove.pid),
                           "pushmail": (push.imap_port, push.pid)}
                out["load_average"] = os.getloadavg()[0]
                out.update(measure(servers, args.folders, raws, args.runs))
            finally:
                push.stop()
        finally:
            dove.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
