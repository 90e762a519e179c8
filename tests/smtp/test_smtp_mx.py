"""The MX listener over real sockets: local users only, never a relay, strict DATA,
and a 250 only once the message is in the store, byte for byte."""

from __future__ import annotations

import smtplib
import socket

import pytest
from smtp_harness import Smtpd

MESSAGE = (
    b"From: Someone <someone@remote.test>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: hello\r\n"
    b"\r\n"
    b"..a line that starts with a dot\r\n"
    b"body \xc3\xa9 8bit\r\n"
)


def connect(smtpd: Smtpd) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", smtpd.port("smtp"), timeout=10)
    client.ehlo("client.test")
    return client


def test_local_delivery_is_stored_byte_exact_with_trace_headers(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        refused = client.sendmail("someone@remote.test", ["alice@example.org"], MESSAGE)
        assert refused == {}
        stored = smtpd.inbox("alice@example.org")  # right after the 250: durable
    assert len(stored) == 1
    head, sep, rest = stored[0].partition(b"From: Someone")
    assert sep and sep + rest == MESSAGE
    lines = head.split(b"\r\n")
    assert lines[0] == b"Return-Path: <someone@remote.test>"
    assert lines[1] == b"Received: from client.test ([127.0.0.1])"
    assert lines[2].startswith(b"\tby mx.test (pushmail) with ESMTP id ")
    assert lines[3] == b"\tfor <alice@example.org>;"
    assert smtpd.inbox("bob@example.org") == []
    assert [e.kind for e in smtpd.publisher.events] == ["new"]


def test_unknown_user_in_local_domain_is_550_5_1_1(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.mail("someone@remote.test")
        code, text = client.rcpt("nobody@example.org")
        assert code == 550 and text.startswith(b"5.1.1")
        code, text = client.rcpt("nobody@other.test")  # a domain only a user makes local
        assert code == 550 and text.startswith(b"5.1.1")


@pytest.mark.parametrize(
    "rcpt", ["victim@elsewhere.test", "alice@example.org.evil.test", "x@mx.test.evil"]
)
def test_remote_domains_are_relaying_denied(smtpd: Smtpd, rcpt: str) -> None:
    with connect(smtpd) as client:
        client.mail("someone@remote.test")
        code, text = client.rcpt(rcpt)
        assert (code, text) == (550, b"5.7.1 relaying denied")


def test_relay_denied_even_after_starttls(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        assert client.has_extn("starttls")
        client.starttls(context=smtpd.client_tls)
        client.ehlo("client.test")
        assert not client.has_extn("auth")  # MX has no logins
        client.mail("someone@remote.test")
        assert client.rcpt("victim@elsewhere.test")[0] == 550
        assert client.rcpt("alice@example.org")[0] == 250
        assert client.data(MESSAGE)[0] == 250
    assert b"with ESMTPS id" in smtpd.inbox("alice@example.org")[0]


def test_plus_address_null_sender_and_case(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        assert client.mail("<>")[0] == 250
        assert client.rcpt("Alice+lists@Example.ORG")[0] == 250
        assert client.data(MESSAGE)[0] == 250
    (raw,) = smtpd.inbox("alice@example.org")
    assert raw.startswith(b"Return-Path: <>\r\n")


def test_size_is_advertised_and_enforced(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        assert client.esmtp_features["size"] == "20000"
        code, _ = client.mail("someone@remote.test", ["SIZE=20001"])
        assert code == 552
        client.rset()
        client.mail("someone@remote.test", ["SIZE=100"])
        client.rcpt("alice@example.org")
        code, text = client.data(b"x" * 900 + b"\r\n" + (b"y" * 998 + b"\r\n") * 25)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.noop()[0] == 250  # the session goes on
    assert smtpd.inbox("alice@example.org") == []


def raw_session(smtpd: Smtpd, payload: bytes) -> bytes:
    """Send ``payload`` after DATA's 354 on a raw socket; return all replies."""
    with socket.create_connection(("127.0.0.1", smtpd.port("smtp")), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        for cmd in (b"EHLO c\r\n", b"MAIL FROM:<a@remote.test>\r\n",
                    b"RCPT TO:<alice@example.org>\r\n", b"DATA\r\n"):  # fmt: skip
            sock.sendall(cmd)
            while (line := f.readline())[3:4] == b"-":
                pass
        assert line.startswith(b"354")
        sock.sendall(payload + b"QUIT\r\n")
        return f.read()


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
def test_smuggling_attempts_store_nothing(smtpd: Smtpd, smuggle: bytes) -> None:
    payload = (
        b"Subject: a\r\n\r\nfirst" + smuggle + b"MAIL FROM:<admin@example.org>\r\n"
        b"RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
    )
    replies = raw_session(smtpd, payload)
    assert replies.startswith(b"550 5.6.0 ")
    assert replies.endswith(b"221 Bye\r\n")
    assert smtpd.inbox("alice@example.org") == []
    assert smtpd.inbox("bob@example.org") == []


def test_user_deleted_between_rcpt_and_data_is_refused(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.mail("someone@remote.test")
        assert client.rcpt("bob@example.org")[0] == 250
        smtpd.store(lambda s: s.delete_user("bob@example.org"))
        code, text = client.data(MESSAGE)
        assert code == 550 and b"bob@example.org" in text


def test_mx_has_no_auth_and_checks_command_order(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.starttls(context=smtpd.client_tls)
        client.ehlo("client.test")
        assert client.docmd("AUTH", "PLAIN AGFAYgBj")[0] == 504
        assert client.docmd("DATA")[0] == 503
        assert client.rcpt("alice@example.org")[0] == 503
        client.mail("someone@remote.test")
        code, text = client.docmd("RCPT", "TO:<unparseable")
        assert (code, text[:5]) == (550, b"5.1.3")
        assert client.noop()[0] == 250
