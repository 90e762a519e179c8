"""The command line, in-process through ``main([...])`` and as ``python -m pushmail``."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushmail.auth.passwords import verify_password
from pushmail.cli import main
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.unixsock import UnixSocketBus
from pushmail.store.sqlite import SqliteStore

MESSAGE_LF = b"From: a@remote.test\nSubject: cli\n\nline one\nline two\n"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"  # not created yet: the commands must create it


def stored_hash(data_dir: Path, address: str) -> str | None:
    store = SqliteStore(data_dir / "pushmail.sqlite3")
    try:
        user = store.get_user(address)
        return user.password_hash if user else None
    finally:
        store.close()


def inbox(data_dir: Path, address: str) -> list[bytes]:
    store = SqliteStore(data_dir / "pushmail.sqlite3")
    try:
        user = store.get_user(address)
        assert user is not None
        box = store.get_mailbox(user.id, "INBOX")
        assert box is not None
        return [store.get_raw(box.id, m.uid) for m in store.list_messages(box.id)]
    finally:
        store.close()


def run_main(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: bytes = b"") -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return main(args)


def cli(data_dir: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pushmail", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


# -- users ------------------------------------------------------------------------------


def test_user_add_list_passwd_del(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(data_dir)]
    assert run_main(monkeypatch, ["user", "add", "Ann@Example.org", "--password-stdin", *d],
                    b"first password\n") == 0  # fmt: skip
    assert (data_dir.stat().st_mode & 0o777) == 0o700
    hashed = stored_hash(data_dir, "ann@example.org")
    assert hashed is not None and verify_password(hashed, "first password")
    assert run_main(monkeypatch, ["user", "add", "bo@example.org", "--password-stdin", *d],
                    b"x-password\r\n") == 0  # fmt: skip
    capsys.readouterr()
    assert main(["user", "list", *d]) == 0
    assert capsys.readouterr().out == "ann@example.org\nbo@example.org\n"

    assert run_main(monkeypatch, ["user", "passwd", "ann@example.org", "--password-stdin", *d],
                    b"second password\n") == 0  # fmt: skip
    hashed = stored_hash(data_dir, "ann@example.org")
    assert hashed is not None
    assert verify_password(hashed, "second password") and not verify_password(
        hashed, "first password"
    )

    assert main(["user", "del", "ann@example.org", "--yes", *d]) == 0
    assert stored_hash(data_dir, "ann@example.org") is None
    out = capsys.readouterr()
    assert "second password" not in out.out + out.err  # nothing secret is printed


def test_user_errors(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(data_dir)]
    add = ["user", "add", "ann@example.org", "--password-stdin", *d]
    assert run_main(monkeypatch, add, b"pw-pw-pw\n") == 0
    assert run_main(monkeypatch, add, b"pw-pw-pw\n") == 73
    assert "already exists" in capsys.readouterr().err
    assert (
        run_main(monkeypatch, ["user", "add", "no-at-sign", "--password-stdin", *d], b"p-p-p-p-p\n")
        == 64
    )
    assert run_main(monkeypatch, ["user", "add", "x@y", "--password-stdin", *d], b"\n") == 64
    assert main(["user", "del", "ghost@example.org", *d]) == 67
    assert (
        run_main(monkeypatch, ["user", "passwd", "ghost@x", "--password-stdin", *d], b"p-p-p-p-p\n")
        == 67
    )
    assert "no such user" in capsys.readouterr().err


def test_interactive_password_is_asked_twice(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["one-pw-one", "two-pw-two", "same-pw-same", "same-pw-same"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    d = ["--data-dir", str(data_dir)]
    assert main(["user", "add", "ann@example.org", *d]) == 1
    assert "differ" in capsys.readouterr().err
    assert stored_hash(data_dir, "ann@example.org") is None
    assert main(["user", "add", "ann@example.org", *d]) == 0
    hashed = stored_hash(data_dir, "ann@example.org")
    assert hashed is not None and verify_password(hashed, "same-pw-same")


def test_demo_user(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-user", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "demo@localhost" in out and "1143" in out and "1993" in out and "2525" in out
    password = next(line.split()[1] for line in out.splitlines() if line.startswith("password:"))
    hashed = stored_hash(data_dir, "demo@localhost")
    assert hashed is not None and verify_password(hashed, password)
    assert main(["demo-user", "--data-dir", str(data_dir)]) == 0
    again = capsys.readouterr().out
    assert "already exists" in again and "pushmail user passwd demo@localhost" in again
    assert password not in again


# -- usage and config -------------------------------------------------------------------


def test_usage_errors_are_64(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 64
    assert main(["frobnicate"]) == 64
    assert main(["user"]) == 64
    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out


def test_bad_config_is_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("smtpp = 'x'\n")
    assert main(["user", "list", "--config", str(config)]) == 78
    assert "unknown key 'smtpp'" in capsys.readouterr().err
    assert main(["serve", "--data-dir", str(tmp_path), "--smtp", "nonsense"]) == 78


def test_config_file_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text('data_dir = "from-config"\n')
    assert main(["demo-user", "--config", str(tmp_path / "c.toml")]) == 0
    assert (tmp_path / "from-config" / "pushmail.sqlite3").exists()


# -- deliver (as an MTA runs it: a subprocess) ------------------------------------------


def test_deliver_exit_codes_and_crlf(data_dir: Path) -> None:
    assert cli(data_dir, "user", "add", "ann@example.org", "--password-stdin",
               stdin=b"pw-pw-pw\n").returncode == 0  # fmt: skip
    r = cli(data_dir, "deliver", "ann@example.org", "-f", "a@remote.test", stdin=MESSAGE_LF)
    assert r.returncode == 0, r.stderr
    (raw,) = inbox(data_dir, "ann@example.org")
    assert raw == b"Return-Path: <a@remote.test>\r\n" + MESSAGE_LF.replace(b"\n", b"\r\n")
    r = cli(data_dir, "deliver", "ghost@example.org", stdin=MESSAGE_LF)
    assert r.returncode == 67 and b"5.1.1" in r.stderr
    assert cli(data_dir, "deliver", "ann@example.org", stdin=b"").returncode == 65
    assert cli(data_dir, "deliver", stdin=MESSAGE_LF).returncode == 64


def test_deliver_store_unavailable_is_tempfail(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    r = cli(not_a_dir, "deliver", "ann@example.org", stdin=MESSAGE_LF)
    assert r.returncode == 75, r.stderr


def test_deliver_wakes_a_listening_process(data_dir: Path) -> None:
    assert cli(data_dir, "user", "add", "ann@example.org", "--password-stdin",
               stdin=b"pw-pw-pw\n").returncode == 0  # fmt: skip
    store = SqliteStore(data_dir / "pushmail.sqlite3")
    try:
        user = store.get_user("ann@example.org")
        assert user is not None
    finally:
        store.close()

    async def go() -> MailboxChanged:
        loop = asyncio.get_running_loop()
        (data_dir / "events").mkdir(exist_ok=True)
        bus = UnixSocketBus(data_dir / "events")
        bus.start(loop)
        heard: asyncio.Future[MailboxChanged] = loop.create_future()
        bus.subscribe(user.id, lambda e: heard.done() or heard.set_result(e))
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pushmail", "deliver", "ann@example.org",
                "--data-dir", str(data_dir), stdin=subprocess.PIPE,
            )  # fmt: skip
            await proc.communicate(MESSAGE_LF)
            assert proc.returncode == 0
            return await asyncio.wait_for(heard, 10)
        finally:
            bus.close()

    event = asyncio.run(go())
    assert event.user_id == user.id and event.kind == "new"


# -- serve ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    smtp = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushmail", "serve", "--data-dir", str(data_dir),
         "--imap", f"127.0.0.1:{free_port()}", "--imaps", "off", "--submission", "off",
         "--lmtp", "off", "--smtp", f"127.0.0.1:{smtp}", "--log-level", "warning"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", smtp), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield proc, smtp
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


def test_serve_accepts_mail_and_stops_on_sigterm(
    data_dir: Path, served: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = served
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    assert cli(data_dir, "user", "add", "ann@localhost", "--password-stdin",
               stdin=b"pw-pw-pw\n").returncode == 0  # fmt: skip
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        assert client.sendmail("a@remote.test", ["ann@localhost"], b"Subject: s\r\n\r\nx\r\n") == {}
    assert len(inbox(data_dir, "ann@localhost")) == 1
    assert oct(os.stat(data_dir / "tls-key.pem").st_mode & 0o777) == oct(0o600)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_user_add_and_import_use_default_domain(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 item 14: a bare name gets ``@default_domain``; without it, refused."""
    d = ["--data-dir", str(data_dir)]
    bare = ["user", "add", "ann", "--password-stdin", *d]
    assert run_main(monkeypatch, bare, b"pw-pw-pw\n") == 64
    conf = tmp_path / "pushmail.toml"
    conf.write_text('default_domain = "Example.org"\n')
    c = [*d, "--config", str(conf)]
    assert run_main(monkeypatch, ["user", "add", "Ann", "--password-stdin", *c], b"pw-pw-pw\n") == 0
    assert stored_hash(data_dir, "ann@example.org") is not None
    passwd = tmp_path / "passwd"
    passwd.write_text("bo:{PLAIN}secret\n")
    assert main(["user", "import", str(passwd), *c]) == 0
    assert stored_hash(data_dir, "bo@example.org") == "{PLAIN}secret"


# -- rough edges: messages instead of tracebacks, no stores made by mistake -------------


def test_user_add_without_terminal_or_password_stdin_is_a_message(data_dir: Path) -> None:
    """getpass falls back to stdin without a terminal; at its end: EOFError before."""
    r = cli(data_dir, "user", "add", "ann@example.org", stdin=b"")
    assert r.returncode == 64, r.stderr
    assert b"Traceback" not in r.stderr and b"--password-stdin" in r.stderr


@pytest.mark.parametrize(
    "command",
    [["user", "list"], ["user", "del", "a@example.org"], ["user", "passwd", "a@example.org"],
     ["alerts", "list"], ["alerts", "queue"]],
)  # fmt: skip
def test_commands_that_only_read_never_create_a_store(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "typo"
    r = cli(typo, *command, stdin=b"long-enough-pw\n")
    assert r.returncode == 66, r.stderr
    assert b"does not exist" in r.stderr and b"Traceback" not in r.stderr
    assert not typo.exists()
    typo.mkdir()  # an empty directory is not a store either
    r = cli(typo, *command, stdin=b"long-enough-pw\n")
    assert r.returncode == 66 and b"no pushmail store" in r.stderr, r.stderr
    assert list(typo.iterdir()) == []


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = cli(afile, "user", "add", "ann@example.org", "--password-stdin", stdin=b"pw-pw-pw\n")
    assert r.returncode == 73 and b"is not a directory" in r.stderr, r.stderr
    r = cli(afile, "user", "list")
    assert r.returncode == 66 and b"is not a directory" in r.stderr, r.stderr


def test_unopenable_store_is_a_message(data_dir: Path) -> None:
    data_dir.mkdir()
    for name in ("pushmail.sqlite3", "push.sqlite3"):
        (data_dir / name).write_bytes(b"this is not a database" * 100)
    for command in (["user", "list"], ["user", "add", "ann@example.org", "--password-stdin"],
                    ["alerts", "list"]):  # fmt: skip
        r = cli(data_dir, *command, stdin=b"pw-pw-pw\n")
        assert r.returncode == 74, (command, r.stderr)
        assert b"Traceback" not in r.stderr and str(data_dir).encode() in r.stderr


def test_port_zero_is_logged_as_the_chosen_port(data_dir: Path) -> None:
    off = ["--imaps", "off", "--submission", "off", "--lmtp", "off", "--http", "off"]
    args = ["serve", "--data-dir", str(data_dir), "--imap", "127.0.0.1:0", "--smtp", "127.0.0.1:0"]
    args += off
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushmail", *args], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while len([x for x in lines if "listening on" in x]) < 2:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        for line in (x for x in lines if "listening on" in x):
            port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
            assert port != 0
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        if proc.stderr is not None:
            proc.stderr.close()


def test_short_password_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(data_dir)]
    assert run_main(monkeypatch, ["user", "add", "ann@example.org", "--password-stdin", *d],
                    b"x\n") == 64  # fmt: skip
    assert "at least 8" in capsys.readouterr().err
    assert run_main(monkeypatch, ["user", "add", "ann@example.org", "--password-stdin", *d],
                    b"12345678\n") == 0  # fmt: skip
    assert run_main(monkeypatch, ["user", "passwd", "ann@example.org", "--password-stdin", *d],
                    b"1234567\n") == 64  # fmt: skip
    hashed = stored_hash(data_dir, "ann@example.org")
    assert hashed is not None and verify_password(hashed, "12345678")


def test_user_del_asks_on_a_terminal_and_scripts_say_yes(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(data_dir)]
    assert run_main(monkeypatch, ["user", "add", "ann@example.org", "--password-stdin", *d],
                    b"pw-pw-pw\n") == 0  # fmt: skip
    # no terminal, no --yes: refused, nothing deleted
    assert main(["user", "del", "ann@example.org", *d]) == 64
    assert "--yes" in capsys.readouterr().err
    assert stored_hash(data_dir, "ann@example.org") is not None
    # a terminal: asked; anything but y keeps the user
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["user", "del", "ann@example.org", *d]) == 1
    assert stored_hash(data_dir, "ann@example.org") is not None
    assert main(["user", "del", "ann@example.org", *d]) == 0
    assert stored_hash(data_dir, "ann@example.org") is None


def test_user_quota(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(data_dir)]
    assert run_main(monkeypatch, ["user", "add", "ann@example.org", "--password-stdin", *d],
                    b"first password\n") == 0  # fmt: skip
    capsys.readouterr()
    assert main(["user", "quota", "ann@example.org", "--storage", "100M", *d]) == 0
    assert main(["user", "quota", "ann@example.org", "--messages", "50000", *d]) == 0
    assert main(["user", "quota", "ann@example.org", *d]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[-1] == "ann@example.org: storage 0 of 100M, messages 0 of 50000"
    assert main(["user", "quota", "ann@example.org", "--none", *d]) == 0
    assert capsys.readouterr().out.endswith("storage 0 of unlimited, messages 0 of unlimited\n")
    assert main(["user", "quota", "ann@example.org", "--storage", "lots", *d]) == 64
    assert main(["user", "quota", "nobody@example.org", "--none", *d]) == 67
