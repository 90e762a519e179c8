"""A real ``pushmail serve`` process on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    imap: int
    imaps: int
    smtp: int
    submission: int
    lmtp: int
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()  # more `pushmail serve` arguments, e.g. ("--workers", "3")
    http: str = "off"  # the alerts HTTP listener: off unless a test asks for it
    _started: bool = False

    def args(self) -> list[str]:
        ep = lambda p: f"127.0.0.1:{p}"  # noqa: E731
        return [
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--imap",
            ep(self.imap),
            "--imaps",
            ep(self.imaps),
            "--smtp",
            ep(self.smtp),
            "--submission",
            ep(self.submission),
            "--lmtp",
            ep(self.lmtp),
            "--http",
            self.http,
            *self.extra,
        ]

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return self.cli_at(self.data_dir, *args, stdin=stdin)

    def cli_at(
        self, data_dir: Path, *args: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """A ``pushmail`` command on another data directory (a restored copy...)."""
        return subprocess.run(
            [sys.executable, "-m", "pushmail", *args, "--data-dir", str(data_dir)],
            input=stdin,
            capture_output=True,
            timeout=60,
        )

    def add_user(self, address: str, password: str) -> None:
        r = self.cli("user", "add", address, "--password-stdin", stdin=password.encode() + b"\n")
        assert r.returncode == 0, r.stderr

    def start(self) -> None:
        """Start the server and wait for its ports. On a first start that loses a
        port race with another process ("address already in use"), pick new free
        ports and try again; a restart keeps its ports."""
        for attempt in range(3):
            try:
                self._start_once()
                self._started = True
                return
            except RuntimeError as exc:
                if self._started or "already in use" not in str(exc) or attempt == 2:
                    raise
                self.imap, self.imaps, self.smtp, self.submission, self.lmtp = (
                    free_port() for _ in range(5)
                )

    def _start_once(self) -> None:
        log = self.data_dir / "server.log"
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as logfile:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pushmail", *self.args()],
                stdout=subprocess.DEVNULL,
                stderr=logfile,
            )
        deadline = time.monotonic() + 30
        for port in (self.imap, self.imaps, self.smtp, self.lmtp):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
        time.sleep(0.1)  # a listener that failed after others bound exits now
        if self.proc.poll() is not None:
            self.proc = None
            with open(log, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            raise RuntimeError("server did not start: " + text)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
