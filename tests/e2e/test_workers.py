"""Several worker processes behind one port: a delivery taken by any worker wakes the
idlers in every worker, over plain and TLS connections (each forked worker hands its
own TLS 1.3 sessions to the record layer, from a key log of its own); and sessions
that go to sleep move to their user's home worker (``net/homes.py``), TLS included,
where they are woken and resumed."""

from __future__ import annotations

import contextlib
import json
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port
from test_push_e2e import lmtp_deliver, message, read_until

WORKERS = 3
SESSIONS = 24


def _server(tmp_path: Path, settings: str, top: str = "") -> Iterator[Server]:
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    cfg = tmp_path / "pushmail.toml"
    cfg.write_text(f"{top}[imap_settings]\n{settings}")
    srv.extra = ("--workers", str(WORKERS), "--config", str(cfg))
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    srv.add_user("bob@example.org", "bob-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def workers_server(tmp_path: Path) -> Iterator[Server]:
    """Sessions stay in the worker that accepted them: the bus must reach them all."""
    yield from _server(tmp_path, "home_workers = false\n")


@pytest.fixture
def homes_server(tmp_path: Path) -> Iterator[Server]:
    yield from _server(tmp_path, "")


@pytest.fixture
def one_delivery_worker(tmp_path: Path) -> Iterator[Server]:
    """IMAP sessions stay where they were accepted (no home worker), so the test can
    see that IMAP still spreads over every worker while mail goes to one."""
    yield from _server(tmp_path, "home_workers = false\n", top="delivery_workers = 1\n")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _local_ports() -> dict[str, int]:
    """Socket inode -> local port of every established TCP socket on the machine."""
    ports: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "01":  # ESTABLISHED
                    ports[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return ports


def _conn_count(pid: int, *ports: int) -> int:
    """How many established TCP connections to ``ports`` a process holds. Counted by
    port: a worker also opens sockets of its own (bus, channels) now and then, and
    those must not pass for accepted clients."""
    local = _local_ports()
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and local.get(link[8:-1]) in ports:
            n += 1
    return n


def _stats(srv: Server, key: str) -> dict[int, int]:
    """One figure from every worker's stats file, by worker index."""
    out = {}
    for path in (srv.data_dir / "stats").glob("worker-*.json"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            out[int(data["worker"])] = int(data.get(key, 0))
    return out


def _handoffs(srv: Server) -> int:
    """TLS sessions moved to the record layer, over all workers' stats files."""
    return sum(_stats(srv, "tls_handoffs").values())


def _tls() -> ssl.SSLContext:
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    return tls


def _idle(srv: Server, i: int, user: str) -> socket.socket:
    """Session ``i`` (odd: IMAPS, TLS 1.3) of ``user`` in IDLE on INBOX."""
    if i % 2:
        raw = socket.create_connection(("127.0.0.1", srv.imaps), timeout=10)
        s: socket.socket = _tls().wrap_socket(raw)
    else:
        s = socket.create_connection(("127.0.0.1", srv.imap), timeout=10)
    read_until(s, rb"\* OK")
    s.sendall(f"a LOGIN {user}@example.org {user}-secret\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
    read_until(s, rb"\+ idling")
    return s


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_delivery_reaches_idlers_in_every_worker(workers_server: Server) -> None:
    srv = workers_server
    assert srv.proc is not None
    socks: list[socket.socket] = []
    workers = _children(srv.proc.pid)
    assert len(workers) == WORKERS
    before = {w: _conn_count(w, srv.imap, srv.imaps) for w in workers}
    try:
        for i in range(SESSIONS):
            socks.append(_idle(srv, i, "alice"))
        busy = [w for w in workers if _conn_count(w, srv.imap, srv.imaps) - before[w] >= 4]
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


def test_sleeping_sessions_move_to_their_users_home_worker(homes_server: Server) -> None:
    """Each user's hibernated sessions, plain and TLS, all end up in one worker (the
    kernel spread them at accept), are woken there by a delivery taken by any worker,
    and resume there: the moved TLS state goes on where the first worker left it."""
    srv = homes_server
    users = ("alice", "bob")
    socks: dict[str, list[socket.socket]] = {u: [] for u in users}
    try:
        for i in range(SESSIONS):
            socks[users[i % 2]].append(_idle(srv, i // 2, users[i % 2]))
        # Each worker writes its stats file on its own schedule: wait until one
        # reading shows every session asleep and every move adopted.
        _wait_for(
            "every session hibernated, in two workers, one user's in each; every move adopted",
            lambda: sorted(_stats(srv, "hibernated").values()) == [0, SESSIONS // 2, SESSIONS // 2]
            and sum(_stats(srv, "adopted").values()) == sum(_stats(srv, "moved_home").values()),
        )
        moved = sum(_stats(srv, "moved_home").values())
        assert moved > 0, "the kernel should have accepted some sessions elsewhere"
        for user in users:
            replies = lmtp_deliver(srv, message(f"to {user}"), rcpts=[f"{user}@example.org"])
            assert replies[f"{user}@example.org"][0] == 250
        for user in users:
            for s in socks[user]:
                read_until(s, rb"\* 1 EXISTS\r\n")
        for user in users:
            for s in socks[user]:
                s.sendall(b"DONE\r\n")
                read_until(s, b"c OK")
                s.sendall(b"d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
                reply = read_until(s, b"d OK")
                assert f"Subject: to {user}".encode() in reply
                s.sendall(b"e IDLE\r\n")
                read_until(s, rb"\+ idling")
        _wait_for(
            "asleep again, at home, with no further move",
            lambda: sorted(_stats(srv, "hibernated").values()) == [0, SESSIONS // 2, SESSIONS // 2],
        )
        assert sum(_stats(srv, "moved_home").values()) == moved
        assert _handoffs(srv) == SESSIONS // 2
    finally:
        for group in socks.values():
            for s in group:
                s.close()


def test_mail_is_taken_by_the_delivery_workers_only(one_delivery_worker: Server) -> None:
    """``delivery_workers = 1``: every SMTP and LMTP connection lands in one worker,
    while IMAP still spreads over all three, and mail still reaches every idler."""
    srv = one_delivery_worker
    assert srv.proc is not None
    workers = _children(srv.proc.pid)
    assert len(workers) == WORKERS
    before = {w: _conn_count(w, srv.smtp, srv.lmtp) for w in workers}
    clients: list[smtplib.SMTP] = []
    socks: list[socket.socket] = []
    try:
        for _ in range(4):
            lmtp = smtplib.LMTP("127.0.0.1", srv.lmtp, timeout=10)
            lmtp.ehlo_or_helo_if_needed()
            smtp = smtplib.SMTP("127.0.0.1", srv.smtp, timeout=10)
            smtp.ehlo()
            clients += [lmtp, smtp]
        gained = sorted(_conn_count(w, srv.smtp, srv.lmtp) - before[w] for w in workers)
        assert gained == [0, 0, 8], gained
        imap_before = {w: _conn_count(w, srv.imap, srv.imaps) for w in workers}
        for i in range(SESSIONS):
            socks.append(_idle(srv, i, "alice"))
        counts = {w: _conn_count(w, srv.imap, srv.imaps) - imap_before[w] for w in workers}
        busy = [w for w in workers if counts[w] >= 4]
        assert len(busy) >= 2, ("IMAP connections still spread over the workers", counts)
        clients[0].sendmail("sender@example.com", ["alice@example.org"], message("one door"))
        for s in socks:
            read_until(s, rb"\* 1 EXISTS\r\n")
    finally:
        for c in clients:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                c.quit()
        for s in socks:
            s.close()
