"""A real Debian Postfix in front of a real ``pushmail serve``, configured as
docs/operations.md ("Postfix in front") says: recipients are looked up live through
pushmail's socketmap service and mail goes on over LMTP.

Postfix runs from its own configuration directory (``postfix -c DIR``), with its own
queue, on loopback ports; it needs root (it drops to the ``postfix`` user itself).
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_server import Server, free_port

MASTER_CF = """\
127.0.0.1:{smtp} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

# What a private instance needs (its own queue and log, loopback only, no relaying)
# and a test device: a message with X-Test-Hold waits on hold, so the test decides
# when Postfix tries to deliver it. The lines for pushmail come from the docs.
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = mx.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
smtputf8_enable = no
biff = no
smtpd_relay_restrictions = reject_unauth_destination
header_checks = regexp:{root}/conf/header_checks
"""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_main_cf(socketmap: int, lmtp: int) -> str:
    """The main.cf lines docs/operations.md gives, on the test's ports."""
    text = DOCS.read_text()
    found = re.search(r"<!-- postfix-main-cf:[^>]*-->\n```\n(.*?)```", text, re.S)
    assert found, "the marked main.cf block is missing from docs/operations.md"
    lines = found.group(1).replace("127.0.0.1:2426", f"127.0.0.1:{socketmap}")
    lines = lines.replace("127.0.0.1:2424", f"127.0.0.1:{lmtp}")
    assert f":{socketmap}:mailbox" in lines and f"lmtp:inet:127.0.0.1:{lmtp}" in lines
    return lines


def _need_postfix() -> str:
    path = shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin")
    reason = None
    if path is None:
        reason = "postfix not installed (apt-get install -y postfix)"
    elif os.geteuid() != 0:
        reason = "a private Postfix instance needs root"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert path is not None
    return path


@dataclass
class Postfix:
    binary: str
    root: Path
    smtp: int

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        conf = str(self.root / "conf")
        tool = Path(self.binary).parent / args[0]
        cmd = [str(tool), "-c", conf, *args[1:]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in Postfix's log:\n{self.log()}")


@pytest.fixture
def pushmail(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.extra = ("--socketmap", f"127.0.0.1:{free_port()}")
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def postfix(pushmail: Server) -> Iterator[Postfix]:
    binary = _need_postfix()
    # Not under pytest's tmp_path: Postfix's daemons drop to the postfix user and
    # must reach the queue and configuration, and pytest's base directory is 0700.
    root = Path(tempfile.mkdtemp(prefix="pushmail-postfix-"))
    root.chmod(0o755)
    socketmap = int(pushmail.extra[1].rsplit(":", 1)[1])
    (root / "conf").mkdir()
    (root / "queue").mkdir()
    pf = Postfix(binary, root, free_port())
    (root / "conf" / "main.cf").write_text(
        MAIN_CF.format(root=root) + documented_main_cf(socketmap, pushmail.lmtp)
    )
    (root / "conf" / "master.cf").write_text(MASTER_CF.format(smtp=pf.smtp))
    (root / "conf" / "header_checks").write_text("/^X-Test-Hold: yes/ HOLD\n")
    started = pf.run("postfix", "start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr + pf.log()
        _wait_port(pf.smtp)
        yield pf
    finally:
        pf.run("postfix", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _inbox_subjects(srv: Server) -> list[str]:
    from pushmail.store.sqlite import SqliteStore

    store = SqliteStore(srv.data_dir / "pushmail.sqlite3")
    try:
        user = store.get_user("alice@example.org")
        assert user is not None
        box = store.get_mailbox(user.id, "INBOX")
        assert box is not None
        raws = [store.get_raw(box.id, m.uid) for m in store.list_messages(box.id)]
    finally:
        store.close()
    return [m.group(1).decode() for r in raws if (m := re.search(rb"Subject: (\S+)", r))]


def _wait_subject(srv: Server, subject: str, pf: Postfix, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while subject not in _inbox_subjects(srv):
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject} not delivered; Postfix log:\n{pf.log()}")
        time.sleep(0.1)


def test_postfix_in_front(pushmail: Server, postfix: Postfix) -> None:
    _wait_port(int(pushmail.extra[1].rsplit(":", 1)[1]))
    with smtplib.SMTP("127.0.0.1", postfix.smtp, timeout=20) as c:
        c.ehlo("client.test")
        c.mail("sender@remote.test")
        # A known recipient (and its +tag form) is accepted ...
        assert c.rcpt("alice@example.org")[0] == 250
        assert c.rcpt("Alice+lists@example.org")[0] == 250
        # ... an unknown one is refused during the SMTP conversation: no bounce later.
        code, text = c.rcpt("nobody@example.org")
        assert code == 550 and b"5.1.1" in text, (code, text)
        # A domain that is not pushmail's is not relayed.
        assert c.rcpt("someone@elsewhere.test")[0] >= 500
        assert c.data(b"Subject: first\r\n\r\nhello\r\n")[0] == 250
    _wait_subject(pushmail, "first", postfix)
    assert "non-delivery notification" not in postfix.log()  # no backscatter

    # pushmail stops after Postfix accepted a message: Postfix keeps it and defers,
    # then delivers once pushmail is back.
    with smtplib.SMTP("127.0.0.1", postfix.smtp, timeout=20) as c:
        c.sendmail("sender@remote.test", ["alice@example.org"],
                   b"X-Test-Hold: yes\r\nSubject: second\r\n\r\nhello again\r\n")  # fmt: skip
    queue_id = postfix.wait_log(r"postfix/cleanup\[\d+\]: (\w+): hold:").group(1)
    pushmail.stop()
    # Meanwhile new mail is answered "try again later", never accepted and bounced.
    with smtplib.SMTP("127.0.0.1", postfix.smtp, timeout=20) as c:
        c.ehlo("client.test")
        c.mail("sender@remote.test")
        code, _ = c.rcpt("alice@example.org")
        assert 400 <= code < 500, code
    released = postfix.run("postsuper", "-H", queue_id)
    assert released.returncode == 0, released.stderr
    postfix.run("postqueue", "-f")
    postfix.wait_log(rf"{queue_id}: to=<alice@example.org>.*status=deferred")
    assert "second" not in _inbox_subjects(pushmail)

    pushmail.start()
    _wait_port(int(pushmail.extra[1].rsplit(":", 1)[1]))
    flushed = postfix.run("postqueue", "-f")
    assert flushed.returncode == 0, flushed.stderr
    _wait_subject(pushmail, "second", postfix)
    postfix.wait_log(rf"{queue_id}: to=<alice@example.org>.*status=sent")
