"""Several worker processes behind one port: a delivery taken by any worker wakes the
idlers in every worker, over plain and TLS connections (each forked worker hands its
own TLS 1.3 sessions to the record layer, from a key log of its own)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port
from test_push_e2e import lmtp_deliver, message, read_until

WORKERS = 3
SESSIONS = 24


@pytest.fixture
def workers_server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.extra = ("--workers", str(WORKERS))
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _conn_count(pid: int) -> int:
    """How many TCP sockets a process holds (its open socket fds)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def _handoffs(srv: Server) -> int:
    """TLS sessions moved to the record layer, over all workers' stats files."""
    total = 0
    for path in (srv.data_dir / "stats").glob("worker-*.json"):
        with contextlib.suppress(OSError, ValueError):
            total += int(json.loads(path.read_text()).get("tls_handoffs", 0))
    return total


def test_delivery_reaches_idlers_in_every_worker(workers_server: Server) -> None:
    srv = workers_server
    assert srv.proc is not None
    socks: list[socket.socket] = []
    workers = _children(srv.proc.pid)
    assert len(workers) == WORKERS
    before = {w: _conn_count(w) for w in workers}
    try:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        for i in range(SESSIONS):
            if i % 2:
                raw = socket.create_connection(("127.0.0.1", srv.imaps), timeout=10)
                s = tls.wrap_socket(raw)
            else:
                s = socket.create_connection(("127.0.0.1", srv.imap), timeout=10)
            socks.append(s)
            read_until(s, rb"\* OK")
            s.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
            read_until(s, rb"\+ idling")
        busy = [w for w in workers if _conn_count(w) - before[w] >= 4]
        assert len(busy) >= 2, "SO_REUSEPORT should spread connections over workers"
        t0 = time.monotonic()
        replies = lmtp_deliver(srv, message("to every worker"))
        assert replies["alice@example.org"][0] == 250
        for s in socks:
            read_until(s, rb"\* 1 EXISTS\r\n")
        assert time.monotonic() - t0 < 10
        for s in socks:
            s.sendall(b"DONE\r\n")
            read_until(s, b"c OK")
        deadline = time.monotonic() + 10
        while _handoffs(srv) != SESSIONS // 2:
            assert time.monotonic() < deadline, _handoffs(srv)
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
