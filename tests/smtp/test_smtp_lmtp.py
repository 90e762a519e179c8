"""LMTP (RFC 2033) over real sockets with ``smtplib.LMTP``: one reply per accepted
recipient after DATA, in RCPT order (§4.2)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

from smtp_harness import Smtpd

MESSAGE = b"Subject: via lmtp\r\n\r\nhello\r\n"


def connect(smtpd: Smtpd) -> smtplib.LMTP:
    client = smtplib.LMTP("127.0.0.1", smtpd.port("lmtp"), timeout=10)
    client.ehlo_or_helo_if_needed()  # LMTP.ehlo sends LHLO
    return client


def test_lhlo_is_required_and_ehlo_refused(smtpd: Smtpd) -> None:
    with smtplib.LMTP("127.0.0.1", smtpd.port("lmtp"), timeout=10) as client:
        assert client.docmd("EHLO", "x")[0] == 500
        assert client.docmd("HELO", "x")[0] == 500
        code, _ = client.ehlo("mta.test")
        assert code == 250
        assert not client.has_extn("auth")


def test_one_reply_per_recipient_in_rcpt_order(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.mail("sender@remote.test")
        assert client.rcpt("bob@example.org")[0] == 250
        code, text = client.rcpt("ghost@example.org")  # unknown: refused at RCPT
        assert code == 550 and text.startswith(b"5.1.1")
        assert client.rcpt("alice@example.org")[0] == 250
        code, text = client.data(MESSAGE)  # the reply for bob
        assert code == 250 and b"<bob@example.org>" in text
        code, text = client.getreply()  # and one for alice
        assert code == 250 and b"<alice@example.org>" in text
        assert client.noop()[0] == 250  # no stray replies left over
    (bob,) = smtpd.inbox("bob@example.org")
    (alice,) = smtpd.inbox("alice@example.org")
    assert bob == alice and bob.endswith(b"\r\n" + MESSAGE)
    assert b"with LMTP id" in bob
    assert b"\tfor <" not in bob  # two recipients: neither is named


def test_per_recipient_failure_after_data(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.mail("sender@remote.test")
        assert client.rcpt("alice@example.org")[0] == 250
        assert client.rcpt("bob@example.org")[0] == 250
        smtpd.store(lambda s: s.delete_user("bob@example.org"))
        code, text = client.data(MESSAGE)
        assert code == 250 and b"alice" in text
        code, text = client.getreply()
        assert code == 550 and b"<bob@example.org>" in text
        assert client.noop()[0] == 250
    assert len(smtpd.inbox("alice@example.org")) == 1


def test_a_deleted_user_gets_no_mail_even_just_after_a_delivery(smtpd: Smtpd) -> None:
    """RCPT may answer from memory (an address that resolved a moment ago); the
    delivery itself checks again, so the message is refused, not stored."""
    with connect(smtpd) as client:
        client.sendmail("sender@remote.test", ["bob@example.org"], MESSAGE)
        smtpd.store(lambda s: s.delete_user("bob@example.org"))
        client.mail("sender@remote.test")
        assert client.rcpt("alice@example.org")[0] == 250
        if client.rcpt("bob@example.org")[0] == 250:
            assert client.data(MESSAGE)[0] == 250  # alice's
            code, text = client.getreply()  # bob's
            assert code == 550 and b"<bob@example.org>" in text
        else:
            assert client.data(MESSAGE)[0] == 250
        assert client.noop()[0] == 250
    assert len(smtpd.inbox("alice@example.org")) == 1
    assert smtpd.store(lambda s: s.get_user("bob@example.org")) is None


def test_refused_data_gets_one_reply_per_recipient(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.mail("sender@remote.test")
        client.rcpt("alice@example.org")
        client.rcpt("bob@example.org")
        big = (b"z" * 998 + b"\r\n") * 30
        assert client.data(big)[0] == 552
        assert client.getreply()[0] == 552
        assert client.noop()[0] == 250
    assert smtpd.inbox("alice@example.org") == []


def test_relaying_denied_on_lmtp_too(smtpd: Smtpd) -> None:
    with connect(smtpd) as client:
        client.mail("sender@remote.test")
        assert client.rcpt("x@elsewhere.test") == (550, b"5.7.1 relaying denied")


def test_lmtp_on_a_unix_socket(smtpd_factory: Callable[..., Smtpd], tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    smtpd = smtpd_factory(lmtp_socket=path, smtp=None, submission=None, lmtp=None)
    assert [x.name for x in smtpd.listeners] == ["lmtp-unix"]
    with smtplib.LMTP(str(path), timeout=10) as client:
        client.ehlo("mta.local")
        client.mail("sender@remote.test")
        client.rcpt("carol@other.test")
        assert client.data(MESSAGE)[0] == 250
    (raw,) = smtpd.inbox("carol@other.test")
    assert b"Received: from mta.local (unix socket)" in raw
