"""NATS killed (SIGKILL) and restarted in the middle of a delivery stream (issue 17,
"NATS restarted during a stream"): deliveries go on being answered 250, and every
idle session, on the delivering node and on the other, learns of every message,
none missed.

The machine's NATS is shared by every test, so this one runs a nats-server of its
own on a free loopback port (no JetStream). The periodic re-check is set far beyond
the test's waits, so what repairs the hints lost in the outage is the re-check that
follows the bus's reconnect; the sessions thus learn of the mail well within the
re-check interval."""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_node import Imap, Node, free_port, message, pushmail

from conftest import PASSWORD, Cluster

NATS_SERVER = os.environ.get("PUSHMAIL_TEST_NATS_SERVER", "/usr/sbin/nats-server")
USERS = [f"nats{n}@example.org" for n in range(4)]
BUSY, QUIET = USERS[:2], USERS[2:]  # the stream goes on for BUSY across the restart
_SLOW_RECHECK = "[imap_settings]\nrecheck_interval = 600\n"


class PrivateNats:
    """A nats-server of this test's own that can be killed and started again on
    the same port."""

    def __init__(self, binary: str, log: Path) -> None:
        self.binary, self.log = binary, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-a", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4096).startswith(b"INFO "):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start: " + self.log.read_text())
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    binary = shutil.which(NATS_SERVER) or shutil.which("nats-server")
    if binary is None:
        reason = f"no nats-server binary ({NATS_SERVER}; Debian: apt install nats-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {reason}")
        pytest.skip(reason)
    nats = PrivateNats(binary, tmp_path / "nats.log")
    nats.start()
    try:
        yield nats
    finally:
        nats.stop()


def test_nats_killed_and_restarted_mid_stream(cluster: Cluster, private_nats: PrivateNats) -> None:
    cluster.add_users(*USERS)
    bus = f"{private_nats.url}?prefix=restart"
    a, b = (Node(cluster.root / name, cluster.store, bus, config=_SLOW_RECHECK) for name in "ab")
    cluster.nodes += [a, b]
    for node in (a, b):
        node.spawn()
    for node in (a, b):
        node.wait_ready()
    idlers = [(user, Imap(node.imap, user, PASSWORD)) for user in USERS for node in (a, b)]
    for _, idler in idlers:
        idler.ok("SELECT INBOX")
        idler.idle()

    acked: list[str] = []
    failed: list[BaseException] = []
    quiet = threading.Event()  # from now on, mail for BUSY only
    finished = threading.Event()

    def stream() -> None:
        try:
            with smtplib.LMTP("127.0.0.1", a.lmtp, timeout=30) as lmtp:
                n = 0
                while not finished.is_set():
                    group = BUSY if quiet.is_set() else USERS
                    to = group[n % len(group)]
                    lmtp.sendmail("s@example.net", [to], message(f"m{n}"))
                    acked.append(to)
                    n += 1
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(exc)

    sender = threading.Thread(target=stream)
    sender.start()
    _wait_until(lambda: len(acked) >= 16 or bool(failed))
    quiet.set()
    n = len(acked)
    _wait_until(lambda: len(acked) >= n + 2 or bool(failed))  # none in flight for QUIET
    private_nats.kill()  # while a delivery may be on its way
    _wait_until(lambda: len(acked) >= n + 8 or bool(failed))
    # Mail for the quiet users that no hint announces: `pushmail deliver` (an MTA's
    # mailbox command) cannot reach NATS, and no later mail to them will follow.
    for user in QUIET:
        pushmail(cluster.root / "cli", cluster.store, bus, "deliver", user,
                 stdin=message("while NATS was away"))  # fmt: skip
    private_nats.start()
    n = len(acked)
    _wait_until(lambda: len(acked) >= n + 10 or bool(failed))
    finished.set()
    sender.join(60)
    assert not failed, failed
    expected = {user: acked.count(user) + (user in QUIET) for user in USERS}

    for user, idler in idlers:
        _wait_for_exists(idler, expected[user])
        idler.done()
        assert len(idler.uids()) == expected[user]
        idler.close()
    for node in (a, b):  # both lost the server and came back, not a lucky miss
        assert "NATS connection back" in node.log(), node.log()[-2000:]


def _wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _wait_for_exists(idler: Imap, expected: int) -> None:
    """Read EXISTS until ``expected``; counts only grow on the way."""
    last = 0
    while last < expected:
        line = idler.wait_for(rb"^\* \d+ EXISTS", timeout=30)
        found = re.match(rb"^\* (\d+) EXISTS", line)
        assert found is not None
        count = int(found.group(1))
        assert count >= last, (count, last)
        last = count
    assert last == expected
