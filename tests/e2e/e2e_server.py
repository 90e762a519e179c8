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
        ]

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "pushmail", *args, "--data-dir", str(self.data_dir)],
            input=stdin,
            capture_output=True,
            timeout=60,
        )

    def add_user(self, address: str, password: str) -> None:
        r = self.cli("user", "add", address, "--password-stdin", stdin=password.encode() + b"\n")
        assert r.returncode == 0, r.stderr

    def start(self) -> None:
        with open(self.data_dir / "server.log", "ab") as logfile:
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
                        raise RuntimeError(
                            "server did not start: " + (self.data_dir / "server.log").read_text()
                        ) from None
                    time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
