"""Issue 15's attacks on a fresh server, bounded and on loopback: one JSON line.

Each attack runs against its own freshly started ``pushmail serve`` (so one cannot
skew the next), from this process, on 127.0.0.x only, for a bounded count and time:

* ``item1``: pre-login connections each sending one command that chains
  ``--literals`` literals of 1 MB (``{1000000+}``), never finished. Server RSS growth
  while they are held, and after they close.
* ``item2_fetch``: logged-in connections pipelining ``FETCH 1 BODY[]`` of a 1 MB
  message ``--fetches`` times without reading; ``item2_capability``: pre-login
  connections pipelining CAPABILITY; ``item2_compress``: the FETCH loop after
  COMPRESS DEFLATE. Server RSS growth once it stops growing (or after ``--settle`` s).
* ``item3``: the server runs with RLIMIT_NOFILE = ``--nofile`` (cheap to exhaust),
  ``--conns`` idle pre-login connections are opened from one address and then from
  ``--sources`` addresses: how many were accepted (greeted at some point), how many
  the server still holds open at the end, how long a real login
  from another address took meanwhile (null: it failed within 20 s), and how many
  lines the server logged about failed ``accept()`` calls.
* ``item4``: ``--item4-conns`` connections guessing passwords from one address; a real
  login's latency from another address meanwhile (``login_s_under_attack``; see
  ``bench/login_attack.py``, which this reuses).
* ``item8``: ``--http-conns`` TLS connections to the alerts API from ``--http-sources``
  addresses, each sending half a request and nothing more: server RSS growth, how
  many it still holds after 2 s and 15 s, and one honest request's status and time
  meanwhile (``bench/abuse_http.py``, which this reuses).

``--src DIR`` runs the server from another checkout's ``src`` (e.g. a worktree of
``main``, for before/after figures). Nothing passes or fails; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from proctools import free_port, raise_nofile

PASSWORD = "abuse-bench-secret"
USER = "alice@example.org"
MB = 1_000_000
# The server sets its own descriptor limit, then runs as ``python -m pushmail``.
_LAUNCH = (
    "import resource, runpy, sys; n = int(sys.argv.pop(1)); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "runpy.run_module('pushmail', run_name='__main__', alter_sys=True)"
)


def log(message: str) -> None:
    print(f"[abuse] {message}", file=sys.stderr, flush=True)


class Server:
    """One ``pushmail serve`` over a fresh data directory."""

    def __init__(self, root: Path, src: Path | None, nofile: int, http: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="abuse-", dir=root))
        self.env = dict(os.environ)
        if src is not None:
            self.env["PYTHONPATH"] = str(src)
        self.nofile = nofile
        self.imap = free_port()
        self.http = free_port() if http else 0  # the alerts API (HTTPS), for item 8
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: bytes) -> None:
        subprocess.run(
            [sys.executable, "-m", "pushmail", *args, "--data-dir", str(self.dir / "data")],
            input=stdin,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self.cli("user", "add", USER, "--password-stdin", stdin=PASSWORD.encode() + b"\n")
        args = ["serve", "--data-dir", str(self.dir / "data"), "--imap", f"127.0.0.1:{self.imap}"]
        args += ["--imaps", "off", "--smtp", "off", "--submission", "off", "--lmtp", "off"]
        args += ["--http", f"127.0.0.1:{self.http}" if self.http else "off", "--workers", "1"]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(self.nofile), *args],
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=self.env,
            )
        stats = self.dir / "data" / "stats" / "worker-0.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.log_path.read_text()[-2000:])
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.imap), 1) as s:
                s.settimeout(5)
                if s.recv(100).startswith(b"* OK") and stats.exists():
                    return
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def rss(self) -> int:
        """The server's resident memory in bytes."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def log_lines(self, needle: str) -> int:
        text = self.log_path.read_text(errors="replace")
        return sum(needle in line for line in text.splitlines())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def server(args: argparse.Namespace, nofile: int = 4096, http: bool = False) -> Iterator[Server]:
    srv = Server(args.tmp, args.src, nofile, http)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)  # its log may be hundreds of MB


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads little
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_until(sock: socket.socket, marker: bytes, limit: float = 30.0) -> bytes:
    got, deadline = b"", time.monotonic() + limit
    while marker not in got and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return got


def push(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send as much of ``data`` as the server takes within ``seconds``."""
    sent, deadline = 0, time.monotonic() + seconds
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            sent += sock.send(view[sent : sent + (1 << 20)])
        except TimeoutError:
            break
        except OSError:
            break
    return sent


def settled_rss(srv: Server, base: int, seconds: float) -> int:
    """RSS growth once it has not grown for a second (or after ``seconds``)."""
    best, still, deadline = srv.rss(), 0, time.monotonic() + seconds
    while time.monotonic() < deadline and still < 10:
        time.sleep(0.1)
        now = srv.rss()
        still = still + 1 if now <= best else 0
        best = max(best, now)
    return best - base


def mib(n: int) -> float:
    return round(n / 2**20, 1)


def item1(args: argparse.Namespace) -> dict[str, object]:
    with server(args) as srv:
        base = srv.rss()
        socks = []
        for _ in range(args.item1_conns):
            s = connect(srv.imap)
            read_until(s, b"\r\n")
            socks.append(s)
        chunk = b" {%d+}\r\n" % MB + b"x" * MB
        for s in socks:
            s.sendall(b"a LOGIN x")
        for _ in range(args.literals):
            for s in socks:
                push(s, chunk, 2.0)
        held = settled_rss(srv, base, args.settle)
        for s in socks:
            s.close()
        time.sleep(2)
        after = srv.rss() - base
        sent = args.item1_conns * args.literals * MB
        log(f"item1: sent {mib(sent)} MiB; growth {mib(held)} MiB, after close {mib(after)}")
        return {"sent_mib": mib(sent), "rss_growth_mib": mib(held), "after_close_mib": mib(after)}


def _deliver_big(srv: Server) -> None:
    body = os.urandom(MB // 2).hex().encode()
    lines = b"\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    raw = b"From: bob@example.org\r\nTo: " + USER.encode() + b"\r\nSubject: big\r\n\r\n" + lines
    srv.cli("deliver", USER, stdin=raw)


def _login(s: socket.socket) -> None:
    read_until(s, b"\r\n")
    s.sendall(f"l LOGIN {USER} {PASSWORD}\r\n".encode())
    assert b"l OK" in read_until(s, b"l OK"), "login failed"


def _fetches(n: int) -> bytes:
    return b"s SELECT INBOX\r\n" + b"".join(b"f%d FETCH 1 BODY[]\r\n" % i for i in range(n))


def item2(args: argparse.Namespace, kind: str) -> dict[str, object]:
    with server(args) as srv:
        _deliver_big(srv)
        base = srv.rss()
        socks = []
        for _ in range(args.item2_conns):
            s = connect(srv.imap)
            if kind == "capability":
                read_until(s, b"\r\n")
                payload = b"c CAPABILITY\r\n" * args.capabilities
            else:
                _login(s)
                payload = _fetches(args.fetches)
                if kind == "compress":
                    s.sendall(b"z COMPRESS DEFLATE\r\n")
                    read_until(s, b"z OK")
                    z = zlib.compressobj(6, zlib.DEFLATED, -15)
                    payload = z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH)
            socks.append((s, payload))
        for s, payload in socks:
            push(s, payload, 3.0)
        grown = settled_rss(srv, base, args.settle)
        for s, _ in socks:
            s.close()
        log(f"item2 {kind}: growth {mib(grown)} MiB")
        return {"rss_growth_mib": mib(grown)}


def _login_seconds(port: int, limit: float = 20.0) -> float | None:
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
            s.settimeout(limit)
            s.sendall(f"l LOGIN {USER} {PASSWORD}\r\n".encode())
            got = read_until(s, b"l OK", limit)
            if b"l OK" not in got:
                return None
    except OSError:
        return None
    return round(time.monotonic() - t0, 3)


def _hold(port: int, sources: list[str], each: int) -> tuple[list[socket.socket], int]:
    socks, greeted = [], 0
    for source in sources:
        for _ in range(each):
            try:
                s = connect(port, source, timeout=2.0)
            except OSError:
                continue
            socks.append(s)
    time.sleep(2.0)  # then read what each was told, without waiting on any
    for s in socks:
        with suppress(OSError):
            s.setblocking(False)
            greeted += s.recv(4096).startswith(b"* OK")
    return socks, greeted


def _is_open(sock: socket.socket) -> bool:
    """Whether the server has not closed this connection (what it sent is read)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def item3(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {"nofile": args.nofile}
    plans: list[tuple[str, Callable[[], list[str]]]] = [
        ("one_address", lambda: ["127.0.0.2"]),
        ("many_addresses", lambda: [f"127.0.1.{i}" for i in range(1, args.sources + 1)]),
    ]
    for name, sources in plans:
        with server(args, args.nofile) as srv:
            srcs = sources()
            each = args.conns // len(srcs)
            t0 = time.monotonic()
            socks, greeted = _hold(srv.imap, srcs, each)
            login = _login_seconds(srv.imap)
            figures = {
                "still_open": sum(_is_open(s) for s in socks),
                "attempted": each * len(srcs),
                "connected": len(socks),
                "accepted": greeted,
                "login_s": login,
                "accept_error_lines": srv.log_lines("out of system resource"),
                "fd_exhausted_lines": srv.log_lines("fd-exhausted"),
                "seconds": round(time.monotonic() - t0, 1),
            }
            for s in socks:
                s.close()
            log(f"item3 {name}: {figures}")
            out[name] = figures
    return out


def item4(args: argparse.Namespace) -> dict[str, object]:
    """Password guessing: ``--item4-conns`` connections guessing from 127.0.0.1 while
    a user who never logged in logs in from 127.0.2.1 (bench/login_attack.py)."""
    from login_attack import PASSWORD as VICTIM_PASSWORD
    from login_attack import TARGETS, attack_and_measure

    with server(args) as srv:
        victim = "victim@example.org"
        for address, pw in [*((t, "the real " + t) for t in TARGETS), (victim, VICTIM_PASSWORD)]:
            srv.cli("user", "add", address, "--password-stdin", stdin=pw.encode() + b"\n")
        figures = asyncio.run(
            attack_and_measure(
                "127.0.0.1", srv.imap, args.item4_conns, 1, 3.0, [(victim, VICTIM_PASSWORD)]
            )
        )
    log(f"item4: {figures}")
    return figures


def item8(args: argparse.Namespace) -> dict[str, object]:
    """HTTP slowloris: ``--http-conns`` TLS connections from ``--http-sources`` addresses
    that never finish their request headers (the scenario of bench/abuse_http.py)."""
    from abuse_http import slowloris

    with server(args, http=True) as srv:
        assert srv.proc is not None
        figures = slowloris(srv.http, srv.proc.pid, args.http_conns, args.http_sources)
    log(f"item8: {figures}")
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--src", type=Path, help="run the server from this checkout's src/")
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    p.add_argument("--item1-conns", type=int, default=5)
    p.add_argument("--literals", type=int, default=20, help="1 MB literals per command")
    p.add_argument("--item2-conns", type=int, default=2)
    p.add_argument("--fetches", type=int, default=100, help="FETCHes of 1 MB per connection")
    p.add_argument("--capabilities", type=int, default=100_000)
    p.add_argument("--nofile", type=int, default=1024, help="the item-3 server's RLIMIT_NOFILE")
    p.add_argument("--conns", type=int, default=1500, help="item-3 connections")
    p.add_argument("--sources", type=int, default=15)
    p.add_argument("--settle", type=float, default=20.0, help="longest wait for RSS to settle")
    p.add_argument("--item4-conns", type=int, default=200, help="password-guessing connections")
    p.add_argument("--http-conns", type=int, default=2000, help="item-8 slowloris connections")
    p.add_argument("--http-sources", type=int, default=1, help="item-8 client addresses")
    p.add_argument("--only", default="1,2,3,4,8")
    args = p.parse_args()
    raise_nofile()  # this process holds --conns sockets
    if args.src is not None:
        args.src = args.src.resolve()
    only = set(args.only.split(","))
    result: dict[str, object] = {"bench": "abuse", "src": str(args.src or "installed")}
    t0 = time.monotonic()
    if "1" in only:
        result["item1"] = item1(args)
    if "2" in only:
        for kind in ("fetch", "capability", "compress"):
            result[f"item2_{kind}"] = item2(args, kind)
    if "3" in only:
        result["item3"] = item3(args)
    if "4" in only:
        result["item4"] = item4(args)
    if "8" in only:
        result["item8"] = item8(args)
    result["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
