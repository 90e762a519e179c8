"""Delivery on node A -> ``* N EXISTS`` on node B (PostgreSQL + NATS), against one
SQLite node, in the same run (issue 17, "How it will be checked").

Three ``pushmail serve`` processes run side by side: one on SQLite with the
Unix-socket bus, two sharing a scratch PostgreSQL database and a NATS subject prefix.
One client idles on a user's INBOX on the SQLite node, another on node B. Deliveries
alternate between the two set-ups (so a busy moment of the machine falls on both):
one LMTP message, then wait for its EXISTS, ``--count`` times each. The latency is
from the LMTP ``250`` (the durable reply) to the line's arrival, both stamped with
``perf_counter`` (the IMAP line by a reader thread as it comes in).

Prints ONE JSON line on stdout (progress on stderr) and appends it to
``bench/results/cluster_wake.jsonl``. Never passes or fails on time.

    .venv/bin/python bench/cluster_wake.py --count 1000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import secrets
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent
USER, PASSWORD = "wake@bench.test", "secret"
MESSAGE = b"From: s@bench.test\r\nSubject: wake\r\n\r\nwake\r\n"


def log(message: str) -> None:
    print(f"[cluster_wake] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pushmail(*args: str, stdin: bytes | None = None) -> None:
    """A ``pushmail`` command, in this process (an interpreter's start-up costs seconds
    on a busy machine)."""
    from pushmail.cli import main

    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            code = main(list(args))
    finally:
        sys.stdin = saved
    if code:
        raise RuntimeError(f"pushmail {args[0]} exited with {code}")


class Node:
    def __init__(self, data_dir: Path, store: str, bus: str) -> None:
        self.data_dir, self.store, self.bus = data_dir, store, bus
        self.imap, self.lmtp = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["serve", "--data-dir", str(self.data_dir), "--store", self.store]
        args += ["--bus", self.bus, "--log-level", "WARNING"]
        args += ["--imap", f"127.0.0.1:{self.imap}", "--lmtp", f"127.0.0.1:{self.lmtp}"]
        for off in ("imaps", "smtp", "submission", "http", "metrics"):
            args += [f"--{off}", "off"]
        with open(self.data_dir / "server.log", "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pushmail", *args], stdout=subprocess.DEVNULL, stderr=err
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        for port in (self.imap, self.lmtp):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert self.proc is not None
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((self.data_dir / "server.log").read_text()) from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Idler:
    """An IMAP session idling on INBOX; a thread stamps each EXISTS as it arrives."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        for tag, command in (("a", f"LOGIN {USER} {PASSWORD}"), ("b", "SELECT INBOX")):
            self.sock.sendall(f"{tag} {command}\r\n".encode())
            while not (reply := self.file.readline()).startswith(f"{tag} ".encode()):
                pass
            if not reply.startswith(f"{tag} OK".encode()):
                raise RuntimeError(f"{command}: {reply!r}")
        self.sock.sendall(b"c IDLE\r\n")
        while not self.file.readline().startswith(b"+"):
            pass
        self.exists: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while line := self.file.readline():
                now = time.perf_counter_ns()
                parts = line.split()
                if len(parts) == 3 and parts[2] == b"EXISTS":
                    self.exists.put((int(parts[1]), now))
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def measure(lmtp: smtplib.LMTP, idler: Idler, n: int) -> float:
    """Deliver message n (the mailbox's n-th), wait for EXISTS n; milliseconds."""
    lmtp.sendmail("s@bench.test", [USER], MESSAGE)
    sent = time.perf_counter_ns()
    while True:
        count, at = idler.exists.get(timeout=30)
        if count >= n:
            return (at - sent) / 1e6


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 3)

    return {"n": len(s), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": q(1)}


@contextmanager
def scratch_database(admin: str) -> Iterator[str]:
    import psycopg

    name = f"pushmail_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path="/" + name))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(count: int, admin: str, nats: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(admin) as pg:
        root = Path(tmp)
        user = f"{USER}:{{PLAIN}}{PASSWORD}\n".encode()
        bus = f"{nats}?prefix=bench{secrets.token_hex(4)}"
        single = Node(root / "sqlite", f"sqlite://{root}/sqlite/pushmail.sqlite3", "")
        single.bus = f"unix://{root}/sqlite/events"
        a, b = Node(root / "a", pg, bus), Node(root / "b", pg, bus)
        single.data_dir.mkdir()
        pushmail("user", "import", "-", "--data-dir", str(single.data_dir), stdin=user)
        pushmail("user", "import", "-", "--data-dir", str(root / "cli"), "--store", pg, stdin=user)
        nodes = [single, a, b]
        try:
            for node in nodes:
                node.spawn()
            for node in nodes:
                node.wait_ready()
            log(f"3 nodes up; {count} deliveries per set-up")
            idle_single, idle_b = Idler(single.imap), Idler(b.imap)
            samples: dict[str, list[float]] = {"sqlite_one_node": [], "pg_nats_a_to_b": []}
            with (
                smtplib.LMTP("127.0.0.1", single.lmtp, timeout=60) as lmtp_single,
                smtplib.LMTP("127.0.0.1", a.lmtp, timeout=60) as lmtp_a,
            ):
                for n in range(1, count + 1):
                    samples["sqlite_one_node"].append(measure(lmtp_single, idle_single, n))
                    samples["pg_nats_a_to_b"].append(measure(lmtp_a, idle_b, n))
                    if n % 200 == 0:
                        log(f"{n} of {count}")
            idle_single.close()
            idle_b.close()
        finally:
            for node in nodes:
                node.stop()
    return {
        "bench": "cluster_wake",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "count": count,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        **{name: summary(values) for name, values in samples.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000, help="deliveries per set-up")
    ap.add_argument(
        "--postgres",
        default=os.environ.get(
            "PUSHMAIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL; a scratch database is made and dropped",
    )
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--no-save", action="store_true", help="do not append to bench/results")
    args = ap.parse_args()
    result = run(args.count, args.postgres, args.nats)
    line = json.dumps(result, sort_keys=True)
    print(line)
    if not args.no_save:
        with open(ROOT / "results" / "cluster_wake.jsonl", "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
