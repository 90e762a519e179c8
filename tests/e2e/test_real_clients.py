"""Real mail clients from Debian (mbsync, fetchmail, swaks, neomutt) and Python's
imapclient and imaplib against a real ``pushmail serve``.

A test skips, naming the package, when its client is not installed; ``.ci/run``
installs them all. Every client is run with a timeout, and its output is shown on
failure.
"""

from __future__ import annotations

import base64
import imaplib
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from e2e_server import Server
from imapclient import IMAPClient
from test_push_e2e import lmtp_deliver, message, read_until

USER, PASSWORD = "alice@example.org", "alice-secret"


def need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (apt-get install -y {package})")
    return path


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def run(args: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False, **kw
    )  # type: ignore[call-overload, no-any-return]


def imap(server: Server) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL("127.0.0.1", server.imaps, ssl_context=tls_context(), timeout=10)
    m.login(USER, PASSWORD)
    return m


def server_messages(server: Server) -> list[tuple[bytes, bytes]]:
    """(subject header, flags) of every INBOX message, through imaplib."""
    m = imap(server)
    try:
        m.select("INBOX")
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        return [(item[1].strip(), item[0]) for item in data if isinstance(item, tuple)]
    finally:
        m.logout()


# -- mbsync ---------------------------------------------------------------------


def mbsync_rc(server: Server, home: Path) -> Path:
    rc = home / "mbsyncrc"
    (home / "Mail").mkdir()
    rc.write_text(
        f"""IMAPAccount pushmail
Host 127.0.0.1
Port {server.imaps}
User {USER}
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {server.data_dir / "tls-cert.pem"}

IMAPStore remote
Account pushmail

MaildirStore local
Path {home}/Mail/
Inbox {home}/Mail/INBOX

Channel inbox
Far :remote:INBOX
Near :local:INBOX
Create Near
Sync All
Expunge Both
SyncState *
"""
    )
    return rc


def test_mbsync_pulls_and_pushes(server: Server, tmp_path: Path) -> None:
    mbsync = need("mbsync", "isync")
    for subject in ("for mbsync one", "for mbsync two"):
        assert lmtp_deliver(server, message(subject))[USER][0] == 250
    rc = mbsync_rc(server, tmp_path)
    r = run([mbsync, "-c", str(rc), "-a"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    inbox = tmp_path / "Mail" / "INBOX"
    files = sorted((inbox / "new").iterdir()) + sorted((inbox / "cur").iterdir())
    assert len(files) == 2
    assert {b"for mbsync one", b"for mbsync two"} == {
        next(ln for ln in f.read_bytes().splitlines() if ln.startswith(b"Subject:"))[9:]
        for f in files
    }
    # Push back: flag one message, and add a new one locally.
    first = files[0]
    cur = inbox / "cur" / (first.name.split(":2,")[0] + ":2,FS")
    first.rename(cur)
    (inbox / "new" / f"{int(time.time())}.local.host").write_bytes(
        message("written locally").replace(b"\r\n", b"\n")
    )
    r = run([mbsync, "-c", str(rc), "-a"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    msgs = server_messages(server)
    assert len(msgs) == 3
    assert b"Subject: written locally" in [s for s, _ in msgs]
    flagged = [flags for _, flags in msgs if b"\\Flagged" in flags]
    assert len(flagged) == 1 and b"\\Seen" in flagged[0]


# -- fetchmail --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["starttls", "imaps"])
def test_fetchmail_fetches_over_tls(server: Server, tmp_path: Path, mode: str) -> None:
    fetchmail = need("fetchmail", "fetchmail")
    for subject in ("fetch one", "fetch two"):
        assert lmtp_deliver(server, message(subject))[USER][0] == 250
    out = tmp_path / "delivered.mbox"
    port = server.imap if mode == "starttls" else server.imaps
    tls = "sslproto tls1.2+" if mode == "starttls" else "ssl"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 service {port} protocol IMAP auth password\n"
        f'  user "{USER}" password "{PASSWORD}" is "someone" here\n'
        f"  {tls} sslcertck sslcertfile {server.data_dir / 'tls-cert.pem'}"
        "  sslcommonname localhost\n"
        f'  keep fetchall mda "cat >> {out}"\n'
    )
    rc.chmod(0o600)
    r = run([fetchmail, "-f", str(rc), "--nosyslog", "-v"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    if mode == "starttls":
        assert "STARTTLS" in r.stdout + r.stderr
    text = out.read_text()
    assert "Subject: fetch one" in text and "Subject: fetch two" in text
    assert all(b"\\Seen" in flags for _, flags in server_messages(server))


# -- swaks ------------------------------------------------------------------------


def test_swaks_smtp_and_submission(server: Server, tmp_path: Path) -> None:
    swaks = need("swaks", "swaks")
    r = run(
        [swaks, "--server", f"127.0.0.1:{server.smtp}", "--to", USER, "--from",
         "someone@example.com", "--header", "Subject: swaks over smtp", "--body", "hi"],
        tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(
        [swaks, "--server", f"127.0.0.1:{server.submission}", "--tls", "--auth", "PLAIN",
         "--auth-user", USER, "--auth-password", PASSWORD, "--to", USER, "--from", USER,
         "--header", "Subject: swaks over submission", "--body", "hi"],
        tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250" in r.stdout and "STARTTLS" in r.stdout
    r = run(  # no AUTH on submission: refused
        [swaks, "--server", f"127.0.0.1:{server.submission}", "--tls", "--to", USER,
         "--from", USER, "--header", "Subject: should not arrive"],
        tmp_path,
    )  # fmt: skip
    assert r.returncode != 0
    subjects = [s for s, _ in server_messages(server)]
    assert subjects == [b"Subject: swaks over smtp", b"Subject: swaks over submission"]


# -- imapclient IDLE --------------------------------------------------------------


def test_imapclient_idle_sees_delivery(server: Server) -> None:
    with IMAPClient("127.0.0.1", server.imaps, ssl=True, ssl_context=tls_context()) as c:
        c.login(USER, PASSWORD)
        c.select_folder("INBOX")
        c.idle()
        assert lmtp_deliver(server, message("idle push"))[USER][0] == 250
        responses: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 10
        while (1, b"EXISTS") not in responses and time.monotonic() < deadline:
            responses += c.idle_check(timeout=1)
        assert (1, b"EXISTS") in responses, responses
        c.idle_done()
        fetched = c.fetch([1], ["ENVELOPE"])
        assert fetched[1][b"ENVELOPE"].subject == b"idle push"


# -- imaplib AUTHENTICATE PLAIN -------------------------------------------------------


def test_imaplib_authenticate_plain_with_and_without_sasl_ir(server: Server) -> None:
    m = imaplib.IMAP4("127.0.0.1", server.imap, timeout=10)
    m.starttls(ssl_context=tls_context())
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
    assert typ == "OK" and m.state == "AUTH"
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    with socket.create_connection(("127.0.0.1", server.imap), timeout=10) as sock:
        read_until(sock, rb"\* OK")
        sock.sendall(b"a AUTHENTICATE PLAIN " + token + b"\r\n")  # loopback: allowed
        assert b"a OK [CAPABILITY" in read_until(sock, rb"a (OK|NO|BAD).*\r\n")
        sock.sendall(b"b AUTHENTICATE PLAIN " + base64.b64encode(b"\0x\0y") + b"\r\n")
        assert b"b BAD" in read_until(sock, rb"b (OK|NO|BAD).*\r\n")  # already logged in


# -- neomutt ----------------------------------------------------------------------


def test_neomutt_lists_the_inbox(server: Server, tmp_path: Path) -> None:
    """neomutt has no batch mode for reading, so it runs in a detached tmux pane and
    the screen is read back; it quits by a keystroke."""
    neomutt = need("neomutt", "neomutt")
    tmux = need("tmux", "tmux")
    assert lmtp_deliver(server, message("seen by neomutt"))[USER][0] == 250
    certs = tmp_path / "certs"
    certs.write_bytes((server.data_dir / "tls-cert.pem").read_bytes())
    rc = tmp_path / "neomuttrc"
    rc.write_text(
        f'set imap_user="{USER}"\nset imap_pass="{PASSWORD}"\n'
        f'set certificate_file="{certs}"\nset ssl_verify_host=no\n'
        f'set folder="imaps://127.0.0.1:{server.imaps}"\nset spoolfile="+INBOX"\n'
        'set header_cache=""\nset message_cachedir=""\nset imap_idle=yes\n'
        "set mail_check=1\nset timeout=1\n"
    )
    session = f"pm{os.getpid()}"
    run([tmux, "-L", session, "new-session", "-d", "-x", "160", "-y", "40",
         f"TERM=xterm {neomutt} -n -F {rc}"], tmp_path)  # fmt: skip
    try:
        screen = ""
        deadline = time.monotonic() + 20
        while "seen by neomutt" not in screen and time.monotonic() < deadline:
            time.sleep(0.3)
            screen = run([tmux, "-L", session, "capture-pane", "-p"], tmp_path).stdout
            if "(r)eject, accept (o)nce" in screen:
                run([tmux, "-L", session, "send-keys", "o"], tmp_path)
        assert "seen by neomutt" in screen, screen
        assert lmtp_deliver(server, message("pushed to neomutt"))[USER][0] == 250
        deadline = time.monotonic() + 20
        while "pushed to neomutt" not in screen and time.monotonic() < deadline:
            time.sleep(0.3)
            screen = run([tmux, "-L", session, "capture-pane", "-p"], tmp_path).stdout
        assert "pushed to neomutt" in screen, screen
    finally:
        run([tmux, "-L", session, "send-keys", "q"], tmp_path)
        run([tmux, "-L", session, "kill-server"], tmp_path)
