"""The server as a user meets it: real sockets, Python's imaplib/smtplib, a real
``pushmail serve`` process."""

from __future__ import annotations

import email.policy
import imaplib
import re
import select
import signal
import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage

from e2e_server import Server


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def login(
    server: Server, user: str = "alice@example.org", pw: str = "alice-secret"
) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", server.imap, timeout=10)
    m.starttls(ssl_context=_tls())
    m.login(user, pw)
    return m


def message(subject: str, body: str = "Hello there.\n", to: str = "alice@example.org") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Boss <boss@example.com>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.com>"
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def lmtp_deliver(
    server: Server, raw: bytes, rcpts: list[str] | None = None
) -> dict[str, tuple[int, bytes]]:
    """Python's smtplib.LMTP reads only one reply after DATA; LMTP sends one per
    accepted recipient (RFC 2033 §4.2), so read the rest ourselves."""
    rcpts = rcpts or ["alice@example.org"]
    with smtplib.LMTP("127.0.0.1", server.lmtp, timeout=10) as lm:
        lm.ehlo_or_helo_if_needed()
        lm.mail("sender@example.com")
        accepted = [r for r in rcpts if lm.rcpt(r)[0] == 250]
        replies = {accepted[0]: lm.data(raw)} if accepted else {}
        for r in accepted[1:]:
            replies[r] = lm.getreply()
        return replies


def read_until(sock: socket.socket, pattern: bytes, timeout: float = 10.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {pattern!r}; got {buf!r}"
        r, _, _ = select.select([sock], [], [], left)
        if r:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed; got {buf!r}"
            buf += chunk
    return buf


def test_starttls_and_implicit_tls_login(server: Server) -> None:
    m = login(server)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"0"]
    m.logout()
    s = imaplib.IMAP4_SSL("127.0.0.1", server.imaps, ssl_context=_tls(), timeout=10)
    assert s.login("bob@example.org", "bob-secret")[0] == "OK"
    typ, boxes = s.list()
    names = b" ".join(boxes)
    for name in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk"):
        assert name in names
    assert b"\\Sent" in names
    s.logout()


def test_wrong_password_is_refused(server: Server) -> None:
    m = imaplib.IMAP4("127.0.0.1", server.imap, timeout=10)
    m.starttls(ssl_context=_tls())
    try:
        m.login("alice@example.org", "wrong")
        raise AssertionError("login should fail")
    except imaplib.IMAP4.error as exc:
        assert "AUTHENTICATIONFAILED" in str(exc)
    finally:
        m.logout()


def test_idle_hears_lmtp_delivery(server: Server) -> None:
    with (
        socket.create_connection(("127.0.0.1", server.imaps), timeout=10) as raw,
        _tls().wrap_socket(raw) as sock,
    ):
        read_until(sock, b"\\* OK")
        sock.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\n")
        read_until(sock, b"b OK")
        sock.sendall(b"c IDLE\r\n")
        read_until(sock, b"\\+ idling")
        t0 = time.monotonic()
        replies = lmtp_deliver(server, message("first push"))
        assert replies["alice@example.org"][0] == 250
        got = read_until(sock, rb"\* 1 EXISTS\r\n")
        assert time.monotonic() - t0 < 5
        assert b"* 1 RECENT" in got or b"RECENT" in read_until(sock, b"RECENT")
        sock.sendall(b"DONE\r\n")
        read_until(sock, b"c OK")
        sock.sendall(b"d FETCH 1 (FLAGS ENVELOPE)\r\n")
        out = read_until(sock, b"d OK")
        assert b'"first push"' in out and b"\\Recent" in out
        sock.sendall(b"e LOGOUT\r\n")
        read_until(sock, b"e OK")


def test_smtp_delivery_and_fetch_items(server: Server) -> None:
    raw = message("fetch me", "Line one\nLine two\n")
    with smtplib.SMTP("127.0.0.1", server.smtp, timeout=10) as s:
        s.sendmail("someone@example.net", ["alice@example.org"], raw)
    m = login(server)
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODYSTRUCTURE ENVELOPE RFC822.SIZE BODY.PEEK[]<0.10>)")
    assert typ == "OK"
    blob = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b'("TEXT" "PLAIN"' in blob.upper()
    assert b'"fetch me"' in blob
    assert b"BODY[]<0>" in blob
    typ, data = m.fetch("1", "(BODY[TEXT])")
    assert b"Line one\r\nLine two\r\n" in data[0][1]  # type: ignore[index]
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]  # type: ignore[operator]
    m.logout()


def test_smtp_is_not_an_open_relay(server: Server) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp, timeout=10) as s:
        s.ehlo()
        s.mail("a@example.net")
        code, _ = s.rcpt("victim@elsewhere.example")
        assert code >= 500
        code, _ = s.rcpt("nobody@example.org")
        assert code >= 500


def test_lmtp_one_reply_per_recipient(server: Server) -> None:
    replies = lmtp_deliver(
        server, message("both"), ["alice@example.org", "nobody@example.org", "bob@example.org"]
    )
    assert [code for code, _ in replies.values()] == [250, 250]
    assert list(replies) == ["alice@example.org", "bob@example.org"]
    for user, pw in (("alice@example.org", "alice-secret"), ("bob@example.org", "bob-secret")):
        m = login(server, user, pw)
        assert m.select("INBOX")[1] == [b"1"]
        m.logout()


def test_two_sessions_see_each_others_changes(server: Server) -> None:
    a, b = login(server), login(server)
    a.select("INBOX")
    b.select("INBOX")
    b.untagged_responses.clear()
    for i in range(3):
        a.append("INBOX", None, None, message(f"appended {i}"))
    b.noop()
    assert b.untagged_responses.get("EXISTS") == [b"3"]
    b.untagged_responses.clear()
    a.store("2", "+FLAGS", "(\\Flagged)")
    b.noop()
    fetches = b.untagged_responses.get("FETCH", [])
    assert any(b"2 (FLAGS (\\Flagged" in f for f in fetches), fetches
    b.untagged_responses.clear()
    a.store("1", "+FLAGS", "(\\Deleted)")
    a.expunge()
    b.noop()
    assert b.untagged_responses.get("EXPUNGE") == [b"1"]
    _typ, data = b.fetch("1:*", "(UID)")
    uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]  # type: ignore[union-attr,arg-type]
    assert uids == [2, 3]
    a.logout()
    b.logout()


def test_move_flag_expunge_and_restart(server: Server) -> None:
    for i in range(3):
        lmtp_deliver(server, message(f"keep {i}"))
    m = login(server)
    typ, data = m.select("INBOX")
    uidvalidity = m.untagged_responses["UIDVALIDITY"][0]
    typ, data = m.uid("MOVE", "1", "Trash")
    assert typ == "OK"
    m.store("1", "+FLAGS", "(\\Flagged)")
    m.logout()
    server.stop()
    server.start()
    m = login(server)
    m.select("INBOX")
    assert m.untagged_responses["UIDVALIDITY"][0] == uidvalidity
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    text = b" ".join(d for d in data if isinstance(d, bytes))
    assert b"UID 2 FLAGS (\\Flagged" in text and b"UID 3" in text and b"UID 1 " not in text
    assert m.select("Trash")[1] == [b"1"]
    lmtp_deliver(server, message("after restart"))
    m.select("INBOX")
    typ, data = m.uid("SEARCH", "ALL")
    assert data == [b"2 3 4"]
    m.logout()


def test_bad_input_gets_bad_and_session_survives(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.imap), timeout=10) as sock:
        read_until(sock, b"\\* OK")
        sock.sendall(b"a1 FROBNICATE\r\n")
        assert b"a1 BAD" in read_until(sock, b"a1 BAD")
        sock.sendall(b"a2 FETCH 1 (FLAGS)\r\n")
        assert b"a2 BAD" in read_until(sock, b"a2 BAD")
        sock.sendall(b"x" * 70000 + b"\r\n")
        read_until(sock, b"BAD \\[TOOBIG\\]")
        sock.sendall(b"a3 NOOP\r\n")
        assert b"a3 OK" in read_until(sock, b"a3 OK")


def test_kill9_loses_no_acknowledged_message(server: Server) -> None:
    acked: list[str] = []
    stop = threading.Event()

    def pump() -> None:
        i = 0
        while not stop.is_set():
            subject = f"stream {i}"
            try:
                lmtp_deliver(server, message(subject))
            except (OSError, smtplib.SMTPException):
                return
            acked.append(subject)
            i += 1

    t = threading.Thread(target=pump)
    t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    stop.set()
    t.join(10)
    assert len(acked) >= 1
    server.start()
    m = login(server)
    m.select("INBOX")
    _typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = {
        d[1].decode().split(":", 1)[1].strip()  # type: ignore[index,union-attr]
        for d in data
        if isinstance(d, tuple)
    }
    missing = [s for s in acked if s not in subjects]
    assert not missing
    m.logout()
