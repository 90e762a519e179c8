"""A real ``pushmail serve`` process under a low descriptor limit, for the tests and
``bench/abuse.py`` of issue 15 item 3 (cheap to exhaust, far below the machine's)."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_server import Server, free_port

# The server sets its own limit before anything else runs, then runs as usual.
_LAUNCH = (
    "import resource, runpy, sys; n = int(sys.argv.pop(1)); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "runpy.run_module('pushmail', run_name='__main__', alter_sys=True)"
)


class FdServer(Server):
    """``Server`` whose process runs with RLIMIT_NOFILE = ``nofile`` and a config
    file (``toml``)."""

    def __init__(self, path: Path, nofile: int, toml: str) -> None:
        data = path / "data"
        data.mkdir(parents=True)
        conf = path / "pushmail.toml"
        conf.write_text(toml)
        super().__init__(data, *(free_port() for _ in range(5)), extra=("--config", str(conf)))
        self.nofile = nofile

    def start(self) -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert hard == resource.RLIM_INFINITY or self.nofile <= hard
        log = self.data_dir / "server.log"
        with open(log, "ab") as logfile:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(self.nofile), *self.args()],
                stdout=subprocess.DEVNULL,
                stderr=logfile,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.imap), timeout=1) as s:
                    s.settimeout(5)
                    # Greeted, and done starting (the push engine opens files after
                    # the listeners): the stats file is written once all runs.
                    stats = self.data_dir / "stats" / "worker-0.json"
                    if s.recv(100).startswith(b"* OK") and stats.exists():
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + log.read_text(errors="replace"))
            time.sleep(0.1)

    def log_text(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")


def connect_from(source: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A connection to the server from the loopback address ``source``."""
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def first_line(sock: socket.socket) -> bytes:
    """The server's first line, b"" if it closed without one."""
    got = b""
    try:
        while b"\r\n" not in got:
            data = sock.recv(4096)
            if not data:
                break
            got += data
    except OSError:
        pass
    return got.split(b"\r\n")[0]


def login_seconds(port: int, password: str) -> float:
    """Time for a fresh connection from 127.0.0.1 to be greeted and logged in."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        buf = b""
        s.sendall(f"l LOGIN alice@example.org {password}\r\n".encode())
        while b"l OK" not in buf and b"l NO" not in buf and b"l BAD" not in buf:
            data = s.recv(4096)
            if not data:
                raise ConnectionError(buf.decode(errors="replace"))
            buf += data
        if b"l OK" not in buf:
            raise ConnectionError(buf.decode(errors="replace"))
    return time.monotonic() - t0
