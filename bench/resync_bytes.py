"""Bytes on the wire for a reconnect-and-catch-up, pushmail vs Dovecot (issue 3).

A phone that lost its connection must learn, on reconnecting, what changed in a big
mailbox. Without CONDSTORE/QRESYNC it re-fetches every message's flags; with QRESYNC
(RFC 7162) the SELECT itself returns only what changed and what vanished. This script
measures how many bytes each way costs, on both servers, in one run:

    .venv/bin/python bench/resync_bytes.py            # 10,000 messages, N = 1, 10, 100

For each server (pushmail first, then a private Dovecot), one user's INBOX is filled
with ``--messages`` messages over LMTP (``lmtp_burst.py``: ``--fill-connections``
concurrent connections, one message per transaction; the same method for both). Then,
for each N and each variant, a fresh round:

1. client A connects, LOGIN, ENABLE QRESYNC, SELECT INBOX, UID FETCH 1:* (FLAGS):
   the full sync (UIDVALIDITY, HIGHESTMODSEQ, UID -> flags); not counted; LOGOUT.
2. session B makes N changes: a third new LMTP deliveries, a third flag changes
   (``+FLAGS (\\Flagged)``), a third expunges (``\\Deleted`` + ``UID EXPUNGE``), kind
   ``i % 3`` for change *i* (so N = 1 is one delivery); targets drawn at random.
3. client A reconnects and catches up; every byte its socket sends and receives from
   connect to the end of the catch-up is counted (after COMPRESS: compressed bytes):
   * ``plain``: LOGIN, SELECT INBOX, UID FETCH 1:* (FLAGS);
   * ``condstore``: LOGIN, SELECT INBOX (CONDSTORE),
     UID FETCH 1:* (FLAGS) (CHANGEDSINCE m), UID SEARCH ALL (for the expunges);
   * ``qresync``: LOGIN, ENABLE QRESYNC, SELECT INBOX (QRESYNC (uidvalidity m));
   * ``*_compress``: the same with COMPRESS DEFLATE right after LOGIN (client side:
     zlib raw deflate, wbits -15, Z_SYNC_FLUSH after each command).
4. the client's resulting UID -> flags map is compared with a fresh full fetch by
   another session (``\\Recent`` ignored: it is per session); a mismatch is an error.

Prints one JSON line; logs go to stderr. Dovecot gets the ``imap_zlib`` plugin (its
COMPRESS) on top of ``dovecot.py``'s configuration.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import smtplib
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).parent))
import proctools
from dovecot import DovecotInstance, ensure_installed
from idle_latency import DOMAIN, message_bytes
from lmtp_burst import burst
from pushmail_server import PushmailInstance

USER = f"resync@{DOMAIN}"
PASSWORD = "resync-bench-pw"
VARIANTS = ("plain", "plain_compress", "condstore", "condstore_compress", "qresync",
            "qresync_compress")  # fmt: skip

_FETCH = re.compile(rb"^\* \d+ FETCH \((.*)\)$")
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_MODSEQ = re.compile(rb"\bMODSEQ \((\d+)\)")
_VANISHED = re.compile(rb"^\* VANISHED (?:\(EARLIER\) )?([0-9:,]+)$")
_CODE = re.compile(rb"^\* OK \[(UIDVALIDITY|HIGHESTMODSEQ) (\d+)\]")
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")

Flags = dict[int, frozenset[str]]


def log(message: str) -> None:
    proctools.log("resync_bytes", message)


class ImapError(Exception):
    """The server answered NO/BAD or closed the connection."""


class Client:
    """A blocking IMAP client that counts socket bytes both ways (compressed or not)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sent = self.received = 0
        self._deflate: zlib._Compress | None = None
        self._inflate: zlib._Decompress | None = None
        self._buf = bytearray()
        self._tags = 0
        self.readline()  # greeting

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ImapError("server closed the connection")
        self.received += len(data)
        self._buf += self._inflate.decompress(data) if self._inflate is not None else data

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readline(self) -> bytes:
        """One response line, literals inlined, CRLF stripped."""
        parts = []
        while True:
            while (end := self._buf.find(b"\r\n")) < 0:
                self._fill()
            line = self._take(end + 2)[:-2]
            parts.append(line)
            literal = _LITERAL.search(line)
            if literal is None:
                return b"".join(parts)
            parts.append(self._take(int(literal.group(1))))

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sent += len(data)
        self.sock.sendall(data)

    def command(self, text: str) -> list[bytes]:
        """Send one command, return its untagged lines; raise on NO/BAD."""
        self._tags += 1
        tag = f"a{self._tags}".encode()
        self.send(tag + b" " + text.encode() + b"\r\n")
        lines: list[bytes] = []
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapError(f"{text[:60]}: {line[:200]!r}")
                return lines
            lines.append(line)

    def login(self) -> None:
        self.command(f'LOGIN "{USER}" "{PASSWORD}"')

    def compress(self) -> None:
        self.command("COMPRESS DEFLATE")
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)


def _uid_set(text: bytes) -> Iterator[int]:
    for part in text.split(b","):
        lo, _, hi = part.partition(b":")
        a, b = int(lo), int(hi or lo)
        yield from range(min(a, b), max(a, b) + 1)


def _compact(uids: list[int]) -> str:
    """``1:3,7`` for [1, 2, 3, 7]: short commands for many UIDs."""
    runs: list[list[int]] = []
    for uid in sorted(uids):
        if runs and runs[-1][1] == uid - 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)


def apply_lines(state: Flags, lines: list[bytes]) -> dict[str, int]:
    """Fold FETCH / VANISHED lines into *state*; return the SELECT codes seen."""
    codes: dict[str, int] = {}
    for line in lines:
        if (m := _FETCH.match(line)) is not None:
            uid, flags = _UID.search(m.group(1)), _FLAGS.search(m.group(1))
            if uid is not None and flags is not None:
                names = flags.group(1).decode().split()
                state[int(uid.group(1))] = frozenset(f for f in names if f != "\\Recent")
        elif (m := _VANISHED.match(line)) is not None:
            for gone in _uid_set(m.group(1)):
                state.pop(gone, None)
        elif (m := _CODE.match(line)) is not None:
            codes[m.group(1).decode()] = int(m.group(2))
    return codes


class Baseline:
    """What client A remembered after its full sync."""

    def __init__(self, port: int) -> None:
        c = Client(port)
        try:
            c.login()
            c.command("ENABLE QRESYNC")
            codes = apply_lines({}, c.command("SELECT INBOX"))
            self.uidvalidity = codes["UIDVALIDITY"]
            self.modseq = codes["HIGHESTMODSEQ"]
            self.flags: Flags = {}
            apply_lines(self.flags, c.command("UID FETCH 1:* (FLAGS)"))
            c.command("LOGOUT")
        finally:
            c.close()


def server_truth(port: int) -> Flags:
    """The mailbox as a fresh session sees it (the reference for correctness)."""
    c = Client(port)
    try:
        c.login()
        c.command("EXAMINE INBOX")
        state: Flags = {}
        apply_lines(state, c.command("UID FETCH 1:* (FLAGS)"))
        c.command("LOGOUT")
        return state
    finally:
        c.close()


def make_changes(imap_port: int, lmtp_port: int, n: int, known: Flags, rng: random.Random) -> None:
    """Session B: N changes, kind ``i % 3`` = delivery, flag change, expunge."""
    kinds = [i % 3 for i in range(n)]
    deliveries, flagged, expunged = (kinds.count(k) for k in range(3))
    targets = rng.sample(sorted(known), flagged + expunged)
    if deliveries:
        with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=60) as lmtp:
            for i in range(deliveries):
                lmtp.sendmail(f"bench@{DOMAIN}", [USER], message_bytes(i, USER))
    c = Client(imap_port)
    try:
        c.login()
        c.command("SELECT INBOX")
        for uid in targets[:flagged]:
            c.command(f"UID STORE {uid} +FLAGS.SILENT (\\Flagged)")
        if expunged:
            gone = _compact(targets[flagged:])
            c.command(f"UID STORE {gone} +FLAGS.SILENT (\\Deleted)")
            c.command(f"UID EXPUNGE {gone}")
        c.command("LOGOUT")
    finally:
        c.close()


def catch_up(port: int, variant: str, base: Baseline) -> tuple[int, Flags]:
    """Reconnect as client A and resynchronise; return (bytes both ways, new state)."""
    c = Client(port)
    try:
        c.login()
        if variant.endswith("_compress"):
            c.compress()
        state: Flags
        if variant.startswith("plain"):
            codes = apply_lines({}, c.command("SELECT INBOX"))
            state = {}
            apply_lines(state, c.command("UID FETCH 1:* (FLAGS)"))
        elif variant.startswith("condstore"):
            codes = apply_lines({}, c.command("SELECT INBOX (CONDSTORE)"))
            state = dict(base.flags)
            fetch = f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base.modseq})"
            apply_lines(state, c.command(fetch))
            exists: set[int] = set()
            for line in c.command("UID SEARCH ALL"):
                if line.startswith(b"* SEARCH"):
                    exists.update(int(u) for u in line.split()[2:])
            state = {uid: f for uid, f in state.items() if uid in exists}
        else:
            c.command("ENABLE QRESYNC")
            state = dict(base.flags)
            select = f"SELECT INBOX (QRESYNC ({base.uidvalidity} {base.modseq}))"
            codes = apply_lines(state, c.command(select))
        if codes.get("UIDVALIDITY") != base.uidvalidity:
            raise ImapError(f"UIDVALIDITY changed: {codes}")
        counted = c.sent + c.received
        c.command("LOGOUT")
        return counted, state
    finally:
        c.close()


def measure_server(
    imap_port: int, lmtp_port: int, ns: list[int], variants: tuple[str, ...]
) -> dict[str, object]:
    rng = random.Random(3)
    result: dict[str, object] = {}
    for n in ns:
        row: dict[str, int] = {}
        for variant in variants:
            base = Baseline(imap_port)
            make_changes(imap_port, lmtp_port, n, base.flags, rng)
            counted, state = catch_up(imap_port, variant, base)
            truth = server_truth(imap_port)
            if state != truth:
                diff = set(state.items()) ^ set(truth.items())
                raise ImapError(f"N={n} {variant}: client state differs ({len(diff)} entries)")
            row[variant] = counted
            log(f"N={n} {variant}: {counted} bytes, {len(truth)} messages, state verified")
        result[str(n)] = row
    return result


def fill(lmtp_port: int, imap_port: int, messages: int, connections: int) -> float:
    started = time.monotonic()
    done = burst(lmtp_port, [USER] * messages, connections, 1)
    if done.errors:
        raise ImapError(f"fill: {len(done.errors)} errors, first {done.errors[0]}")
    seconds = time.monotonic() - started
    count = len(server_truth(imap_port))
    if count != messages:
        raise ImapError(f"fill: INBOX holds {count} messages, wanted {messages}")
    log(f"filled {messages} messages in {seconds:.1f}s")
    return round(seconds, 1)


class _CompressingDovecot(DovecotInstance):
    """``dovecot.py``'s instance plus the imap_zlib plugin, which gives COMPRESS."""

    def write_config(self) -> None:
        DovecotInstance.write_config(self)
        with self.config_path.open("a") as conf:
            conf.write("protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n")


def run_side(name: str, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, object], float]:
    server: PushmailInstance | DovecotInstance
    if name == "pushmail":
        server = PushmailInstance(workdir, [(USER, PASSWORD)], config_text='[push]\nhttp = "off"\n')
        server.log_path = workdir / "pushmail.log"  # one INFO line per delivery: not stderr
        server.import_users()
    else:
        ensure_installed()
        server = _CompressingDovecot(workdir, [(USER, PASSWORD)], sessions=20)
    server.start()
    try:
        fill_s = fill(server.lmtp_port, server.imap_port, args.messages, args.fill_connections)
        return measure_server(server.imap_port, server.lmtp_port, args.n, VARIANTS), fill_s
    finally:
        server.stop()


def ratios(push: dict[str, object], dove: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for n, row in push.items():
        other = dove.get(n)
        if isinstance(row, dict) and isinstance(other, dict):
            out[n] = {k: round(other[k] / v, 3) for k, v in row.items() if v and k in other}
    return out


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise TimeoutError("--timeout reached")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    p.add_argument("--fill-connections", type=int, default=8)
    p.add_argument("--skip-dovecot", action="store_true")
    p.add_argument("--timeout", type=int, default=1200, help="seconds for the whole run")
    args = p.parse_args(argv)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_alarm)
    signal.alarm(args.timeout)
    out: dict[str, object] = {"bench": "resync_bytes", "messages": args.messages}
    fill_s: dict[str, float] = {}
    failed = False
    sides = ["pushmail"] + ([] if args.skip_dovecot else ["dovecot"])
    for name in sides:
        with tempfile.TemporaryDirectory(prefix=f"resync-{name}-") as tmp:
            try:
                out[name], fill_s[name] = run_side(name, args, Path(tmp))
            except Exception as exc:
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                failed = True
    signal.alarm(0)
    push, dove = out.get("pushmail"), out.get("dovecot")
    if isinstance(push, dict) and isinstance(dove, dict) and "error" not in push | dove:
        out["ratio"] = ratios(push, dove)
    out["fill_s"] = fill_s
    out["fill_method"] = f"LMTP, {args.fill_connections} connections, 1 message per transaction"
    print(json.dumps(out), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
