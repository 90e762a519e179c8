"""Submission over real sockets: STARTTLS before AUTH, AUTH before MAIL, the sender
must be the logged-in user, and there is no outbound relay."""

from __future__ import annotations

import smtplib
import time
from base64 import b64encode
from collections.abc import Callable

import pytest
from smtp_harness import PASSWORD, Smtpd

MESSAGE = b"From: alice@example.org\r\nSubject: sent\r\n\r\nhi bob\r\n"


def plain_client(smtpd: Smtpd) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", smtpd.port("submission"), timeout=10)
    client.ehlo("mua.test")
    return client


def tls_client(smtpd: Smtpd) -> smtplib.SMTP:
    client = plain_client(smtpd)
    client.starttls(context=smtpd.client_tls)
    client.ehlo("mua.test")
    return client


def test_nothing_but_starttls_before_tls(smtpd: Smtpd) -> None:
    with plain_client(smtpd) as client:
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        blob = b64encode(b"\0alice@example.org\0" + PASSWORD.encode()).decode()
        assert client.docmd("AUTH", "PLAIN " + blob)[0] == 530
        assert client.mail("alice@example.org")[0] == 530
        assert client.rcpt("bob@example.org")[0] == 530


def test_auth_required_before_mail(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        code, text = client.mail("alice@example.org")
        assert (code, text) == (530, b"5.7.0 Authentication required")


def test_wrong_password_and_unknown_user_are_535(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            client.login("alice@example.org", "wrong")
        assert e.value.smtp_code == 535
    with tls_client(smtpd) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("nobody@example.org", PASSWORD)


def test_plain_login_send_to_local_user(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        assert client.login("Alice@Example.org", PASSWORD)[0] == 235
        assert client.sendmail("alice@example.org", ["bob@example.org"], MESSAGE) == {}
    (raw,) = smtpd.inbox("bob@example.org")
    assert raw.endswith(b"\r\n" + MESSAGE)
    assert b"with ESMTPSA id" in raw


def test_login_mechanism(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        client.user, client.password = "bob@example.org", PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        assert client.mail("bob@example.org")[0] == 250


def test_sender_must_be_the_authenticated_user(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        client.login("alice@example.org", PASSWORD)
        code, text = client.mail("bob@example.org")
        assert code == 553 and text.startswith(b"5.7.1")
        assert client.mail("<>")[0] == 553
        assert client.mail("alice@example.org")[0] == 250


def test_remote_recipient_has_no_outbound_relay(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        client.login("alice@example.org", PASSWORD)
        client.mail("alice@example.org")
        assert client.rcpt("friend@elsewhere.test") == (
            550,
            b"5.7.1 no outbound relay configured",
        )
        assert client.rcpt("carol@other.test")[0] == 250


def test_authzid_for_another_user_is_refused(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        blob = b64encode(b"bob@example.org\0alice@example.org\0" + PASSWORD.encode())
        assert client.docmd("AUTH", "PLAIN " + blob.decode())[0] == 535


def test_bad_base64_is_501_not_a_crash(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client:
        assert client.docmd("AUTH", "PLAIN !!!notbase64")[0] == 501
        assert client.docmd("AUTH", "PLAIN " + b64encode(b"no-nuls").decode())[0] == 501
        assert client.docmd("AUTH", "PLAIN " + b64encode(b"\0\xff\xfe\0x").decode())[0] == 535
        assert client.noop()[0] == 250


def test_too_many_failures_disconnect(smtpd_factory: Callable[..., Smtpd]) -> None:
    smtpd = smtpd_factory()
    client = tls_client(smtpd)
    client.user, client.password = "alice@example.org", "wrong"
    try:  # one attempt per AUTH (``login()`` would also try the next mechanism)
        for _ in range(2):
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                client.auth("PLAIN", client.auth_plain)
            assert e.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            client.auth("PLAIN", client.auth_plain)
        assert e.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()


def test_failed_logins_wait_longer_each_time(smtpd_factory: Callable[..., Smtpd]) -> None:
    from pushmail.config import Limits

    smtpd = smtpd_factory(limits=Limits(auth_failure_delay=0.1, max_auth_failures=5))
    with tls_client(smtpd) as client:
        client.user, client.password = "alice@example.org", "wrong"
        took = []
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.auth("PLAIN", client.auth_plain)
            took.append(time.monotonic() - start)
        assert took[0] >= 0.1 and took[1] >= 0.2 and took[2] >= 0.4
        client.password = PASSWORD
        assert client.auth("PLAIN", client.auth_plain)[0] == 235


def test_bare_login_name_under_default_domain(smtpd_factory: Callable[..., Smtpd]) -> None:
    smtpd = smtpd_factory(default_domain="example.org")
    with tls_client(smtpd) as client:
        assert client.login("Alice", PASSWORD)[0] == 235
        assert client.sendmail("alice@example.org", ["bob@example.org"], MESSAGE) == {}


def test_bare_login_name_without_default_domain_fails(smtpd: Smtpd) -> None:
    with tls_client(smtpd) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("alice", PASSWORD)
