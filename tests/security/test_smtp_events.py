"""Refused recipients, relay attempts and SMTP smuggling are security-log lines with
the client address (and the account, on submission)."""

from __future__ import annotations

import logging
import smtplib
import socket

import pytest
from smtp_harness import PASSWORD, Smtpd


def security_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]


def test_mx_recipient_refusals_and_smuggling(
    smtpd: Smtpd, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pushmail.security"):
        with smtplib.SMTP("127.0.0.1", smtpd.port("smtp"), timeout=10) as client:
            client.ehlo("c.test")
            client.mail("a@remote.test")
            assert client.rcpt("victim@elsewhere.test")[0] == 550
            assert client.rcpt("nobody@example.org")[0] == 550
        with socket.create_connection(("127.0.0.1", smtpd.port("smtp")), timeout=10) as sock:
            sock.sendall(b"EHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.org>\r\n")
            sock.sendall(b"DATA\r\nSubject: x\r\n\r\nfirst\n.\nMAIL FROM:<b@x>\r\n.\r\nQUIT\r\n")
            assert b"550 5.6.0" in sock.makefile("rb").read()
    lines = security_lines(caplog)
    assert "relay-denied service=mx client=127.0.0.1 rcpt=victim@elsewhere.test" in lines
    assert "rcpt-refused service=mx client=127.0.0.1 rcpt=nobody@example.org" in lines
    assert "smtp-smuggling service=mx client=127.0.0.1 sender=a@remote.test" in lines


def test_submission_relay_attempt_names_the_account(
    smtpd: Smtpd, caplog: pytest.LogCaptureFixture
) -> None:
    port = smtpd.port("submission")
    with (
        caplog.at_level(logging.INFO, logger="pushmail.security"),
        smtplib.SMTP("127.0.0.1", port, timeout=10) as client,
    ):
        client.ehlo("c.test")
        client.starttls(context=smtpd.client_tls)
        client.ehlo("c.test")
        client.login("alice@example.org", PASSWORD)
        client.mail("alice@example.org")
        assert client.rcpt("someone@elsewhere.test")[0] == 550
    expected = (
        "relay-denied service=submission client=127.0.0.1 user=alice@example.org"
        " rcpt=someone@elsewhere.test"
    )
    assert expected in security_lines(caplog)
