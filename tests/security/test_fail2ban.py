"""The shipped fail2ban filter (docs/fail2ban/pushmail.conf) against real log lines of
``pushmail serve``: each security event is provoked over a real socket from its own
loopback address, and the real ``fail2ban-regex`` must find exactly the addresses it
should, the timestamp included (a line without a date fail2ban can read never counts)."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "docs" / "fail2ban" / "pushmail.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fail2ban_regex() -> str:
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("fail2ban-regex is missing (Debian package fail2ban)")
        pytest.skip("fail2ban-regex is not installed (Debian package fail2ban)")
    return tool


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    imap, smtp = free_port(), free_port()
    log = tmp_path / "pushmail.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushmail", "serve", "--data-dir", str(tmp_path / "data"),
             "--imap", f"127.0.0.1:{imap}", "--imaps", "off", "--submission", "off",
             "--lmtp", "off", "--smtp", f"127.0.0.1:{smtp}", "--http", "off"],
            stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", imap), timeout=1).close()
                socket.create_connection(("127.0.0.1", smtp), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield log, imap, smtp
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def imap_session(port: int, source: str, lines: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), 10, (source, 0)) as sock:
        f = sock.makefile("rb")
        f.readline()
        for line in lines:
            sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return f.read()


def smtp_client(port: int, source: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))
    client.ehlo("c.test")
    return client


def matched(tool: str, log: Path, mode: str) -> list[str]:
    out = subprocess.run(
        [tool, "-o", "ip", str(log), f"{FILTER}[mode={mode}]"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return sorted(out.stdout.split())


def test_filter_finds_each_event_in_real_log_lines(
    served: tuple[Path, int, int], fail2ban_regex: str
) -> None:
    log, imap, smtp = served
    out = imap_session(imap, "127.0.0.11", [b"a LOGIN mallory@localhost wrong\r\n"])
    assert b"a NO [AUTHENTICATIONFAILED]" in out
    out = imap_session(imap, "127.0.0.12", [b"x BOGUS\r\n"] * 10)
    assert b"* BYE too many bad commands" in out
    with smtp_client(smtp, "127.0.0.13") as client:
        client.mail("a@remote.test")
        assert client.rcpt("victim@elsewhere.test")[0] == 550
    with smtp_client(smtp, "127.0.0.14") as client:
        client.mail("a@remote.test")
        assert client.rcpt("nobody@localhost")[0] == 550
    with socket.create_connection(("127.0.0.1", smtp), 10, ("127.0.0.15", 0)) as sock:
        sock.sendall(b"EHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<postmaster>\r\n")
        sock.sendall(b"QUIT\r\n")
        sock.makefile("rb").read()
    out = imap_session(imap, "127.0.0.16", [b"a LOGIN {100000}\r\n"])
    assert b"a BAD [TOOBIG]" in out
    time.sleep(0.5)  # the lines are written by the server process as it answers

    text = log.read_text()
    events = [ln for ln in text.splitlines() if "pushmail.security: " in ln]
    assert len(events) == 6, text
    assert matched(fail2ban_regex, log, "normal") == ["127.0.0.11"]
    expected = [f"127.0.0.{n}" for n in range(11, 17)]
    assert matched(fail2ban_regex, log, "aggressive") == expected
