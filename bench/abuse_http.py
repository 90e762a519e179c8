"""HTTP slowloris against the alerts API (issue 15, item 8): server memory and open
connections while N TLS clients send half a request and never finish it.

Starts ``pushmail serve`` with only the HTTPS API of interest, opens ``--connections``
TLS connections from ``--sources`` loopback addresses (127.0.0.1, .2, ...), each of
which completes its handshake, sends a request line and one unfinished header, and
then says nothing. It reads the server tree's memory before, once all are open, after
``--wait`` seconds (longer than the header deadline) and after the clients close;
counts how many connections the server still holds at each point; and times one
honest request from another address while the attack holds. One JSON line on stdout.
Loopback only, bounded: at most ``--connections`` sockets and about a minute.

    .venv/bin/python bench/abuse_http.py --connections 2000
    .venv/bin/python bench/abuse_http.py --connections 2000 --sources 100

``slowloris()`` is the scenario alone, for ``bench/abuse.py`` to run against a server
it started. To measure another tree's code (main, before a fix), put its ``src`` first
on ``PYTHONPATH``: the server is ``python -m pushmail``.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import proctools
from pushmail_server import PushmailInstance

HALF_REQUEST = b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _source(i: int, sources: int) -> str:
    n = i % sources
    return f"127.0.{n // 250}.{n % 250 + 1}"


def _open_half(port: int, source: str, ctx: ssl.SSLContext) -> ssl.SSLSocket | None:
    """One slowloris client: TLS up, half a request sent; None if the server refused."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    except OSError:
        return None
    try:
        sock = ctx.wrap_socket(raw)
        sock.sendall(HALF_REQUEST)
        return sock
    except OSError:
        raw.close()
        return None


def _still_open(socks: list[ssl.SSLSocket]) -> int:
    """How many the server has not closed (a closed one reads as EOF or an error)."""
    readable = set()
    for start in range(0, len(socks), 500):  # select() takes descriptors below 1024 only
        chunk = [s for s in socks[start : start + 500] if s.fileno() < 1024]
        if chunk:
            readable.update(select.select(chunk, [], [], 0)[0])
    count = 0
    for sock in socks:
        if sock.fileno() >= 1024:
            count += _peek_open(sock)
        else:
            count += sock not in readable or _peek_open(sock)
    return count


def _peek_open(sock: ssl.SSLSocket) -> int:
    try:
        sock.setblocking(False)
        return 1 if sock.recv(1) else 0
    except ssl.SSLWantReadError:
        return 1
    except (OSError, ssl.SSLError):
        return 0


def _honest_request(port: int, source: str, ctx: ssl.SSLContext) -> tuple[int, float]:
    """(status, milliseconds) of one complete request; status 0 if refused."""
    started = time.monotonic()
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=30, source_address=(source, 0)
        ) as raw, ctx.wrap_socket(raw) as sock:  # fmt: skip
            sock.sendall(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return 0, (time.monotonic() - started) * 1000
    status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
    return status, (time.monotonic() - started) * 1000


def _mib(server_pid: int) -> float:
    return proctools.tree_memory(server_pid).rss_kb / 1024


def slowloris(
    port: int, server_pid: int, connections: int = 2000, sources: int = 1, wait: float = 15.0
) -> dict[str, Any]:
    """The scenario against a running server's HTTPS API on 127.0.0.1:``port``."""
    ctx = _client_tls()
    before = _mib(server_pid)
    started = time.monotonic()
    socks = [s for i in range(connections) if (s := _open_half(port, _source(i, sources), ctx))]
    open_seconds = time.monotonic() - started
    time.sleep(2.0)
    held = _mib(server_pid)
    open_held = _still_open(socks)
    status, ms = _honest_request(port, "127.0.255.254", ctx)
    time.sleep(wait)
    after_wait = _mib(server_pid)
    open_after_wait = _still_open(socks)
    for sock in socks:
        sock.close()
    time.sleep(2.0)
    return {
        "scenario": "http_slowloris",
        "connections": connections,
        "sources": sources,
        "handshakes": len(socks),
        "open_seconds": round(open_seconds, 1),
        "held_after_2s": open_held,
        f"held_after_{wait:g}s": open_after_wait,
        "rss_mib_before": round(before, 1),
        "rss_growth_mib_held": round(held - before, 1),
        f"rss_growth_mib_after_{wait:g}s": round(after_wait - before, 1),
        "rss_growth_mib_after_close": round(_mib(server_pid) - before, 1),
        "honest_request_status": status,
        "honest_request_ms": round(ms, 1),
    }


def _wait_http(port: int, deadline: float) -> None:
    ctx = _client_tls()
    while time.monotonic() < deadline:
        if _honest_request(port, "127.0.0.1", ctx)[0] == 200:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no HTTPS API on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--sources", type=int, default=1, help="client addresses 127.0.x.y")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to keep them open")
    args = parser.parse_args()
    proctools.raise_nofile()
    http_port = proctools.free_port()
    with tempfile.TemporaryDirectory(prefix="abuse-http-") as tmp:
        server = PushmailInstance(
            Path(tmp), users=[("bench@example.org", "bench-password")],
            config_text=f'log_level = "WARNING"\n[push]\nhttp = "127.0.0.1:{http_port}"\n',
            log_path=Path(tmp) / "server.log",
        )  # fmt: skip
        server.add_users()
        server.start()
        try:
            _wait_http(http_port, time.monotonic() + 60)
            result = slowloris(http_port, server.pid, args.connections, args.sources, args.wait)
        finally:
            server.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
