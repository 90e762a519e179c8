"""``pushmail serve`` nodes sharing one store and one bus, and the small clients the
cluster tests drive them with (a line-level IMAP client, LMTP through smtplib)."""

from __future__ import annotations

import contextlib
import io
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pushmail(data_dir: Path, store: str, bus: str, *args: str, stdin: bytes | None = None) -> str:
    """Run a ``pushmail`` command against the shared store, in this process (a new
    interpreter takes seconds to start on a busy machine); its stdout."""
    from pushmail.cli import main

    where = ["--data-dir", str(data_dir), "--store", store, "--bus", bus]
    out, err = io.StringIO(), io.StringIO()
    stdin_file = io.TextIOWrapper(io.BytesIO(stdin or b""))
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        _replaced_stdin(stdin_file),
    ):
        code = main([*args, *where])
    assert code == 0, err.getvalue()
    return out.getvalue()


@contextlib.contextmanager
def _replaced_stdin(replacement: io.TextIOWrapper) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, replacement
    try:
        yield
    finally:
        sys.stdin = saved


@dataclass
class Node:
    """One node: IMAP and LMTP on free loopback ports, everything else off."""

    data_dir: Path
    store: str
    bus: str
    imap: int = field(default_factory=free_port)
    lmtp: int = field(default_factory=free_port)
    config: str = ""  # extra TOML for the node's file
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "pushmail.toml"
        conf.write_text(self.config)
        args = [sys.executable, "-m", "pushmail", "serve", "--config", str(conf)]
        args += ["--data-dir", str(self.data_dir), "--store", self.store, "--bus", self.bus]
        args += ["--imap", f"127.0.0.1:{self.imap}", "--lmtp", f"127.0.0.1:{self.lmtp}"]
        for off in ("imaps", "smtp", "submission", "http", "metrics"):
            args += [f"--{off}", "off"]
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        log.close()

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        for port in (self.imap, self.lmtp):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("node did not start: " + self.log()) from None
                    time.sleep(0.05)

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def deliver(self, to: str, subject: str) -> None:
        """One message over LMTP; raises unless it was accepted."""
        with smtplib.LMTP("127.0.0.1", self.lmtp, timeout=30) as lmtp:
            lmtp.sendmail("sender@example.net", [to], message(subject))


def message(subject: str) -> bytes:
    return f"From: sender@example.net\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n".encode()


UNTAGGED_NUM = re.compile(rb"^\* (\d+) (EXISTS|EXPUNGE|FETCH)")


class Imap:
    """A blocking IMAP client that reads lines: enough for responses without
    literals (EXISTS, FETCH of UID/FLAGS/MODSEQ, VANISHED, SEARCH)."""

    def __init__(self, port: int, user: str = "", password: str = "", timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.tags = 0
        assert self.line().startswith(b"* OK")
        if user:
            self.ok(f"LOGIN {user} {password}")

    def line(self) -> bytes:
        data = self.file.readline()
        if not data:
            raise ConnectionError("server closed the connection")
        return data.rstrip(b"\r\n")

    def wait_for(self, pattern: bytes, timeout: float = 30) -> bytes:
        """Read lines until one matches ``pattern`` (a regex); that line."""
        self.sock.settimeout(timeout)
        while not re.search(pattern, line := self.line()):
            pass
        return line

    def send(self, text: str) -> str:
        self.tags += 1
        tag = f"t{self.tags}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        return tag

    def command(self, text: str) -> tuple[list[bytes], bytes]:
        """Untagged lines and the tagged one."""
        tag = self.send(text).encode()
        lines = []
        while not (line := self.line()).startswith(tag + b" "):
            lines.append(line)
        return lines, line

    def ok(self, text: str) -> list[bytes]:
        lines, done = self.command(text)
        assert done.split(b" ")[1] == b"OK", (text, done)
        return lines

    def idle(self) -> None:
        self._idle_tag = self.send("IDLE")
        while not self.line().startswith(b"+"):
            pass

    def done(self) -> list[bytes]:
        self.sock.sendall(b"DONE\r\n")
        lines = []
        while not (line := self.line()).startswith(self._idle_tag.encode() + b" "):
            lines.append(line)
        return lines

    def uids(self, criteria: str = "ALL") -> list[int]:
        for line in self.ok(f"UID SEARCH {criteria}"):
            if line.startswith(b"* SEARCH"):
                return sorted(int(n) for n in line.split()[2:])
        return []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"z LOGOUT\r\n")
        self.file.close()
        self.sock.close()


def code_value(lines: list[bytes], code: str) -> int:
    """The number of ``[CODE n]`` in the untagged OK lines."""
    for line in lines:
        m = re.search(rb"\[" + code.encode() + rb" (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no [{code}] in {lines}")
