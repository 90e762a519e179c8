"""A throw-away pushmail server for benchmarks, driven only through its command line.

Why the CLI and not an import: the benchmark must measure what an operator runs, in its
own process, so its memory can be read from /proc without the benchmark's own heap
mixed in. The contract used here is::

    python -m pushmail user add ADDRESS --password-stdin --data-dir DIR
    python -m pushmail user import PASSWD-FILE --data-dir DIR
    python -m pushmail serve --data-dir DIR --imap 127.0.0.1:P --imaps off
                             --smtp off --submission off --lmtp 127.0.0.1:Q

With ``tls=True`` the IMAPS listener is on too (``--imaps 127.0.0.1:R``); with no
``tls_cert`` configured the server makes its self-signed EC certificate in DIR.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import proctools
from imap_idle_client import wait_for_tls_greeting
from proctools import child_preexec, free_port, kill_snapshot, snapshot_tree, wait_for_greeting


def log(message: str) -> None:
    proctools.log("pushmail", message)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pushmail", *args]


@dataclass(slots=True)
class PushmailInstance:
    """One pushmail server over a fresh data directory."""

    workdir: Path
    users: list[tuple[str, str]]
    parallel_user_add: int = 4
    workers: int | None = None  # ``serve --workers``; None = the server's default
    imap_port: int = field(default_factory=free_port)
    lmtp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    user_add_seconds: float = 0.0
    log_path: Path | None = None  # the server's stderr goes here (None: our stderr)
    config_text: str = ""  # TOML passed with --config when not empty
    tls: bool = False  # also listen for implicit TLS (IMAPS) on imaps_port
    imaps_port: int = field(default_factory=free_port)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "pushmail-data"

    def add_users(self) -> None:
        """Create every benchmark user, one CLI call each (a few in parallel).

        Parallel calls rely on the store serialising writers (SQLite's busy timeout);
        with ``parallel_user_add=1`` they run strictly one after another.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if self.users:  # the first call creates the database alone, no racing on schema
            self._add_one(self.users[0])
        with ThreadPoolExecutor(max(1, self.parallel_user_add)) as pool:
            list(pool.map(self._add_one, self.users[1:]))
        self.user_add_seconds = time.monotonic() - started
        log(f"added {len(self.users)} users in {self.user_add_seconds:.1f}s")

    def import_users(self) -> None:
        """Create every user in one ``pushmail user import`` of a Dovecot passwd-file
        (``user:{PLAIN}pw``): one process and one transaction, seconds for 10,000."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users))
        started = time.monotonic()
        args = ("user", "import", str(passwd), "--data-dir", str(self.data_dir))
        result = subprocess.run(_command(*args), capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"pushmail user import failed: {result.stderr.strip()[-500:]}")
        self.user_add_seconds = time.monotonic() - started
        log(f"imported {len(self.users)} users in {self.user_add_seconds:.1f}s")

    def worker_stats(self) -> list[dict[str, object]]:
        """The per-worker stats files (``<data_dir>/stats/worker-<n>.json``), by worker."""
        found = []
        for path in sorted(self.data_dir.glob("stats/worker-*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now, or a worker that never wrote
            if isinstance(data, dict):
                found.append({"worker": path.stem.removeprefix("worker-"), **data})
        return found

    def _add_one(self, user: tuple[str, str]) -> None:
        address, password = user
        args = ("user", "add", address, "--password-stdin", "--data-dir", str(self.data_dir))
        result = subprocess.run(
            _command(*args), input=password + "\n", capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"pushmail user add {address} failed: {result.stderr.strip()}")

    def start(self, timeout: float = 60.0) -> None:
        """Start ``pushmail serve`` in its own session and wait for IMAP and LMTP."""
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start ``pushmail serve`` without waiting (see :meth:`wait_ready`); from the
        thread that outlives it (its parent-death signal follows the thread)."""
        args = [
            "serve",
            "--data-dir", str(self.data_dir),
            "--imap", f"127.0.0.1:{self.imap_port}",
            "--imaps", f"127.0.0.1:{self.imaps_port}" if self.tls else "off",
            "--smtp", "off",
            "--submission", "off",
            "--lmtp", f"127.0.0.1:{self.lmtp_port}",
        ]  # fmt: skip
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        if self.config_text:
            config = self.workdir / "pushmail.toml"
            config.write_text(self.config_text)
            args += ["--config", str(config)]
        stderr = sys.stderr if self.log_path is None else self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                _command(*args),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=child_preexec,
            )
        finally:
            if stderr is not sys.stderr:
                stderr.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        for port, greeting in ((self.imap_port, b"* OK"), (self.lmtp_port, b"220")):
            wait_for_greeting(port, greeting, deadline, self.process)
        if self.tls:
            wait_for_tls_greeting(self.imaps_port, deadline, self.process)
        imaps = f" imaps 127.0.0.1:{self.imaps_port}" if self.tls else ""
        log(f"running: imap 127.0.0.1:{self.imap_port}{imaps} lmtp 127.0.0.1:{self.lmtp_port}")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("pushmail is not running")
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL the whole tree if it lingers."""
        if self.process is None:
            return
        tree = snapshot_tree(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log("did not stop on SIGTERM; killing")
        kill_snapshot(tree)
        if self.process.poll() is None:
            self.process.wait(5)
        self.process = None
