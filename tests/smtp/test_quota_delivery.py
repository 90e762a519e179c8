"""Quotas at delivery: LMTP answers each recipient after DATA (452 4.2.2 for the one
over quota, stored for the others, one transaction); SMTP refuses at RCPT, with the
SIZE the client declared."""

from __future__ import annotations

import smtplib

from smtp_harness import Smtpd

from pushmail.store.interfaces import Quota, Store

MESSAGE = b"Subject: quota\r\n\r\n" + b"x" * 500 + b"\r\n"


def limit(smtpd: Smtpd, address: str, quota: Quota) -> None:
    def run(store: Store) -> None:
        user = store.get_user(address)
        assert user is not None
        store.set_quota(user.id, quota)

    smtpd.store(run)


def test_lmtp_defers_only_the_recipient_over_quota(smtpd: Smtpd) -> None:
    limit(smtpd, "bob@example.org", Quota(storage=1000))
    with smtplib.LMTP("127.0.0.1", smtpd.port("lmtp"), timeout=10) as client:
        client.ehlo_or_helo_if_needed()
        for expected in (250, 452):
            client.mail("sender@remote.test")
            assert client.rcpt("alice@example.org")[0] == 250
            assert client.rcpt("bob@example.org")[0] == 250  # LMTP: decided after DATA
            code, text = client.data(MESSAGE)
            assert code == 250 and b"<alice@example.org>" in text
            code, text = client.getreply()
            assert code == expected and b"<bob@example.org>" in text
            if expected == 452:
                assert text.startswith(b"4.2.2")
    assert len(smtpd.inbox("alice@example.org")) == 2
    assert len(smtpd.inbox("bob@example.org")) == 1


def test_smtp_refuses_at_rcpt(smtpd: Smtpd) -> None:
    limit(smtpd, "bob@example.org", Quota(storage=2000, messages=5))
    with smtplib.SMTP("127.0.0.1", smtpd.port("smtp"), timeout=10) as client:
        client.ehlo("mta.remote.test")
        client.mail("sender@remote.test", ["SIZE=5000"])
        code, text = client.rcpt("bob@example.org")
        assert (code, text[:5]) == (452, b"4.2.2")
        assert client.rcpt("alice@example.org")[0] == 250
        client.rset()
        client.mail("sender@remote.test", ["SIZE=600"])
        assert client.rcpt("bob@example.org")[0] == 250
        assert client.data(MESSAGE)[0] == 250
