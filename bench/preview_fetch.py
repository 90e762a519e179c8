"""``FETCH 1:* (PREVIEW)`` on a 10,000-message mailbox, pushmail against Dovecot in the
same run (issue 18). Prints one JSON line.

Both servers get the same messages over LMTP (varied text/plain and multipart
messages from ``mime_corpus``, each made distinct by a serial number); then one
client per server selects INBOX, runs the command once unmeasured (Dovecot computes
and caches previews on first request, pushmail has them from delivery; the cold
figure is reported too) and ``--runs`` times measured: the figure is the median
wall time per command as the client sees it, from sending the command to reading
its tagged OK, every response read and parsed for its literals.

    .venv/bin/python bench/preview_fetch.py [--messages 10000] [--runs 5]

Needs root and dovecot-imapd, dovecot-lmtpd (bench/dovecot.py installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dovecot
from mime_corpus import corpus
from mime_diff import PASSWORD, USER, Imap
from proctools import cpu_seconds, descendants
from pushmail_server import PushmailInstance


def messages(n: int) -> list[bytes]:
    """``n`` distinct messages cycling through the corpus (lines over 998 octets
    left out: LMTP refuses them), each with its serial number in the header."""
    base = [s.raw for s in corpus() if not s.name.endswith("-long-lines")]
    return [b"X-Serial: %d\r\n" % i + base[i % len(base)] for i in range(n)]


def _send(lmtp_port: int, raws: list[bytes]) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
        for raw in raws:
            lmtp.sendmail("sender@example.net", [USER], raw)


def load(lmtp_port: int, raws: list[bytes], connections: int = 4) -> float:
    """Deliver ``raws`` over ``connections`` LMTP sessions at once (the loading is
    not what is measured; the order of the messages does not matter)."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(lambda k: _send(lmtp_port, raws[k::connections]), range(connections)))
    return time.monotonic() - t0


def measure(imap_port: int, server_pid: int, count: int, runs: int) -> dict[str, object]:
    """Wall time per command as the client sees it, and the CPU time the server's
    processes spent on the measured runs (independent of how busy the machine is)."""
    imap = Imap(imap_port)
    try:
        imap.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        imap.ok(b"SELECT INBOX")
        times = []
        cpu0 = 0.0
        for i in range(runs + 1):
            if i == 1:
                # descendants() lists the root too: naming it again counted a one-process
                # server (pushmail) twice, and its CPU figures were double (before 2026-12-06).
                cpu0 = cpu_seconds(descendants(server_pid))
            t0 = time.perf_counter()
            untagged = imap.ok(b"FETCH 1:* (PREVIEW)")
            times.append(time.perf_counter() - t0)
            assert len(untagged) == count, (len(untagged), count)
        cpu = cpu_seconds(descendants(server_pid)) - cpu0
        return {
            "cold_ms": round(times[0] * 1000, 1),
            "median_ms": round(statistics.median(times[1:]) * 1000, 1),
            "runs_ms": [round(t * 1000, 1) for t in times[1:]],
            "server_cpu_ms_per_command": round(cpu / runs * 1000, 1),
        }
    finally:
        imap.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    raws = messages(args.messages)
    version = dovecot.ensure_installed()
    out: dict[str, object] = {"messages": args.messages, "runs": args.runs}
    with (
        tempfile.TemporaryDirectory(prefix="pm-preview-dovecot-") as dwork,
        tempfile.TemporaryDirectory(prefix="pm-preview-") as pwork,
    ):
        dove = dovecot.DovecotInstance(Path(dwork), [(USER, PASSWORD)], sessions=4)
        push = PushmailInstance(Path(pwork), [(USER, PASSWORD)])
        dove.start()
        try:
            push.add_users()
            push.start()
            try:
                out["load_s"] = {
                    "dovecot": round(load(dove.lmtp_port, raws), 1),
                    "pushmail": round(load(push.lmtp_port, raws), 1),
                }
                out["load_average"] = os.getloadavg()[0]
                out[f"dovecot {version}"] = measure(
                    dove.imap_port, dove.pid, args.messages, args.runs
                )
                out["pushmail"] = measure(push.imap_port, push.pid, args.messages, args.runs)
            finally:
                push.stop()
        finally:
            dove.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
