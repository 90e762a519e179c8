"""What real MTAs send, over real sockets (issue 14 items 13 and 14): lines longer
than RFC 5321's 1000 octets, bare LF line ends, ``postmaster`` without a domain, and
bare user names under ``default_domain``; the smuggling defences still hold."""

from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Callable

import pytest
from smtp_harness import Smtpd

from pushmail.smtp.data import MAX_LINE


def session(smtpd: Smtpd, listener: str, rcpt: bytes, payload: bytes) -> bytes:
    """A raw dialogue up to DATA, then ``payload`` and QUIT; every reply after 354."""
    hello = b"LHLO" if listener == "lmtp" else b"EHLO"
    with socket.create_connection(("127.0.0.1", smtpd.port(listener)), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        for cmd in (
            hello + b" c\r\n",
            b"MAIL FROM:<a@remote.test>\r\n",
            b"RCPT TO:" + rcpt + b"\r\n",
        ):
            sock.sendall(cmd)
            while (line := f.readline())[3:4] == b"-":
                pass
            assert line.startswith(b"250"), line
        sock.sendall(b"DATA\r\n")
        assert f.readline().startswith(b"354")
        sock.sendall(payload + b"QUIT\r\n")
        return f.read()


@pytest.mark.parametrize("listener", ["smtp", "lmtp"])
def test_a_line_of_5000_octets_is_delivered(
    smtpd_factory: Callable[..., Smtpd], listener: str
) -> None:
    smtpd = smtpd_factory(limits=_limits(200_000))
    long_line = b"x" * 5000 + b"\r\n"
    replies = session(
        smtpd, listener, b"<alice@example.org>", b"Subject: long\r\n\r\n" + long_line + b".\r\n"
    )
    assert replies.startswith(b"250 "), replies
    (stored,) = smtpd.inbox("alice@example.org")
    assert stored.endswith(b"\r\n\r\n" + long_line)


def test_a_line_over_the_cap_is_refused_and_the_session_goes_on(
    smtpd_factory: Callable[..., Smtpd],
) -> None:
    smtpd = smtpd_factory(limits=_limits(400_000))
    payload = b"Subject: long\r\n\r\n" + b"y" * (MAX_LINE + 100) + b"\r\n.\r\n"
    replies = session(smtpd, "smtp", b"<alice@example.org>", payload)
    assert replies.startswith(b"500 5.5.2 "), replies
    assert replies.endswith(b"221 Bye\r\n")
    assert smtpd.inbox("alice@example.org") == []


@pytest.mark.parametrize("listener", ["smtp", "lmtp"])
def test_bare_lf_is_stored_as_crlf(smtpd: Smtpd, listener: str) -> None:
    payload = b"Subject: lf\n\nfirst\nsecond\r\n.\r\n"
    replies = session(smtpd, listener, b"<bob@example.org>", payload)
    assert replies.startswith(b"250 "), replies
    (stored,) = smtpd.inbox("bob@example.org")
    assert stored.endswith(b"Subject: lf\r\n\r\nfirst\r\nsecond\r\n")


SMUGGLING = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r"]


@pytest.mark.parametrize("listener", ["smtp", "lmtp"])
@pytest.mark.parametrize("smuggle", SMUGGLING)
def test_the_seven_smuggling_variants_are_still_refused(
    smtpd: Smtpd, listener: str, smuggle: bytes
) -> None:
    payload = (
        b"Subject: a\r\n\r\nfirst" + smuggle + b"MAIL FROM:<admin@example.org>\r\n"
        b"RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
    )
    replies = session(smtpd, listener, b"<alice@example.org>", payload)
    assert replies.startswith(b"550 5.6.0 "), replies
    assert replies.endswith(b"221 Bye\r\n")
    assert smtpd.inbox("alice@example.org") == []
    assert smtpd.inbox("bob@example.org") == []


@pytest.mark.parametrize("listener", ["smtp", "lmtp"])
@pytest.mark.parametrize(
    "rcpt", [b"<postmaster>", b"<Postmaster@example.org>", b"<postmaster@mx.test>"]
)
def test_postmaster_goes_to_the_configured_address(
    smtpd_factory: Callable[..., Smtpd], listener: str, rcpt: bytes
) -> None:
    smtpd = smtpd_factory(postmaster="carol@other.test")
    replies = session(smtpd, listener, rcpt, b"Subject: dmarc report\r\n\r\nx\r\n.\r\n")
    assert replies.startswith(b"250 "), replies
    (stored,) = smtpd.inbox("carol@other.test")
    assert stored.endswith(b"Subject: dmarc report\r\n\r\nx\r\n")


def test_postmaster_of_a_remote_domain_is_still_relaying(
    smtpd_factory: Callable[..., Smtpd],
) -> None:
    smtpd = smtpd_factory(postmaster="carol@other.test")
    with smtplib.SMTP("127.0.0.1", smtpd.port("smtp"), timeout=10) as client:
        client.ehlo("c")
        client.mail("a@remote.test")
        assert client.rcpt("postmaster@elsewhere.test") == (550, b"5.7.1 relaying denied")


def test_without_a_postmaster_setting_it_is_refused_with_a_warning(
    smtpd_factory: Callable[..., Smtpd], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pushmail.smtp.servers"):
        smtpd = smtpd_factory()
    assert any("no postmaster address is configured" in r.getMessage() for r in caplog.records)
    with smtplib.SMTP("127.0.0.1", smtpd.port("smtp"), timeout=10) as client:
        client.ehlo("c")
        client.mail("a@remote.test")
        code, text = client.rcpt("postmaster")
        assert code == 550 and text.startswith(b"5.1.1")


def test_lmtp_bare_name_uses_default_domain(smtpd_factory: Callable[..., Smtpd]) -> None:
    smtpd = smtpd_factory(default_domain="example.org")
    replies = session(smtpd, "lmtp", b"<Alice>", b"Subject: bare\r\n\r\nx\r\n.\r\n")
    assert replies.startswith(b"250 "), replies
    assert len(smtpd.inbox("alice@example.org")) == 1


def test_lmtp_bare_name_without_default_domain_is_refused(smtpd: Smtpd) -> None:
    with smtplib.LMTP("127.0.0.1", smtpd.port("lmtp"), timeout=10) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("a@remote.test")
        code, text = client.rcpt("alice")
        assert code == 550 and text.startswith(b"5.1.3")


def _limits(max_message: int) -> object:
    from pushmail.config import Limits

    return Limits(max_message=max_message, auth_failure_delay=0.0, max_auth_failures=3)
