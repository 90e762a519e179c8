"""The README's snippets, run as pasted.

Blocks marked ``<!-- readme-test: NAME -->`` are run by bash in a pseudo-terminal (so
that prompts for passwords and confirmations are answered as a person would), in a
directory that looks like the checkout after ``make run``: ``.venv`` (this test's
environment) and ``./pushmail-data``. The only change made to a snippet is the port
numbers, since the test's server listens on free ports. Blocks marked
``<!-- readme-sample: NAME -->`` are output that must match what the command prints.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"<!-- readme-(test|sample): ([\w-]+) -->\n```[\w]*\n(.*?)```", re.S)
PASSWORD = "correct-horse-battery"


def readme_blocks(kind: str) -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    return {name: body for k, name, body in MARK.findall(text) if k == kind}


def test_every_marked_block_is_found() -> None:
    """A marker that stops matching (a renamed fence) must not silently skip a test."""
    assert set(readme_blocks("test")) == {"idle-watch", "send", "users", "import"}
    assert set(readme_blocks("sample")) == {"demo-user"}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory like the checkout after ``make run``: ``.venv`` is this venv."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return tmp_path


def _pushmail(cwd: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [".venv/bin/pushmail", *args, "--data-dir", "./pushmail-data"],
        cwd=cwd, input=stdin, capture_output=True, timeout=60,
    )  # fmt: skip


class Pty:
    """bash running a snippet on a pseudo-terminal of its own (its controlling
    terminal, so getpass's /dev/tty is this one)."""

    def __init__(self, script: str, cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            ["bash", "-c", script], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=_take_terminal,
        )  # fmt: skip
        os.close(slave)
        self.out = ""
        self._answered = 0

    def expect(
        self, pattern: str, answers: dict[str, str] | None = None, timeout: float = 30
    ) -> str:
        """Read until ``pattern`` shows (or the program ends), answering prompts."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {pattern!r}:\n{self.out}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: every writer closed, the program ended
                    chunk = b""
                if not chunk:
                    break
                self.out += chunk.decode(errors="replace")
            for prompt, answer in (answers or {}).items():
                found = re.search(prompt, self.out[self._answered :])
                if found:
                    self._answered += found.end()
                    os.write(self.master, answer.encode() + b"\n")
        return self.out

    def wait(self, timeout: float = 60) -> int:
        self.expect(r"(?!)", timeout=timeout) if self.proc.poll() is None else None
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
        os.close(self.master)


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def served(checkout: Path) -> Iterator[tuple[Server, str]]:
    """The server `make run` starts, on free ports, and the demo user's password."""
    srv = Server(checkout / "pushmail-data", *(free_port() for _ in range(5)))
    created = _pushmail(checkout, "demo-user")
    assert created.returncode == 0, created.stderr
    password = re.search(rb"password:\s+(\S+)", created.stdout)
    assert password is not None
    srv.start()
    try:
        yield srv, password.group(1).decode()
    finally:
        srv.stop()


def _with_ports(snippet: str, srv: Server) -> str:
    """The README's default ports -> the test server's."""
    for default, port in ((1143, srv.imap), (1993, srv.imaps), (2525, srv.smtp),
                          (1587, srv.submission), (2424, srv.lmtp)):  # fmt: skip
        snippet = snippet.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
        snippet = snippet.replace(f'"127.0.0.1", {default}', f'"127.0.0.1", {port}')
    return snippet


def _need(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} not installed (apt-get install -y {package})")
        pytest.skip(f"{binary} not installed (apt-get install -y {package})")


def test_demo_user_sample_matches_what_make_run_prints(checkout: Path) -> None:
    (sample,) = [readme_blocks("sample")["demo-user"]]
    r = _pushmail(checkout, "demo-user")  # as `make run` calls it
    assert r.returncode == 0, r.stderr
    printed = r.stdout.decode()
    password = re.search(r"password:\s+(\S+)", printed)
    assert password is not None
    assert printed == sample.replace("6kq3…", password.group(1)), printed


def test_idle_watch_hears_the_sent_messages(checkout: Path, served: tuple[Server, str]) -> None:
    _need("swaks", "swaks")
    srv, password = served
    blocks = readme_blocks("test")
    watcher = Pty(_with_ports(blocks["idle-watch"], srv), checkout)
    try:
        watcher.expect(r"\+ idling", {r"password: ": password})
        sender = Pty(_with_ports(blocks["send"], srv), checkout)
        try:
            sender.wait()
            assert sender.proc.returncode == 0, sender.out
        finally:
            sender.close()
        out = watcher.expect(r"\* 2 EXISTS")
        assert "* 1 EXISTS" in out
    finally:
        watcher.close()


def test_user_management_block(checkout: Path) -> None:
    assert _pushmail(checkout, "demo-user").returncode == 0  # the store `make run` made
    script = "set -e\n" + readme_blocks("test")["users"]
    run = Pty(script, checkout)
    try:
        answers = {r"Password: ": PASSWORD, r"Password again: ": PASSWORD, r"\[y/N\] ": "y"}
        out = run.expect(r"deleted bob@example.org", answers)
        assert run.wait() == 0, out
    finally:
        run.close()
    assert "alice@example.org\r\nbob@example.org\r\ndemo@localhost" in out
    listed = _pushmail(checkout, "user", "list").stdout.split()
    assert listed == [b"alice@example.org", b"demo@localhost"]


def test_import_block(checkout: Path) -> None:
    """/etc/dovecot/users is read from the checkout instead (nothing is written to
    /etc); both files hold good lines, so every command succeeds."""
    (checkout / "dovecot-users").write_text(
        "carol@example.org:{PLAIN}carol-secret::::::\ndave@example.org:{PLAIN}dave-secret\n"
    )
    (checkout / "users.txt").write_text("erin:{PLAIN}erin-secret\n")
    script = "set -e\n" + readme_blocks("test")["import"].replace(
        "/etc/dovecot/users", "./dovecot-users"
    )
    r = subprocess.run(["bash", "-c", script], cwd=checkout, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = _pushmail(checkout, "user", "list").stdout.split()
    assert listed == [b"carol@example.org", b"dave@example.org", b"erin@example.org"]
