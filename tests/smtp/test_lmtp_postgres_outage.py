"""LMTP on a PostgreSQL store that goes away: while the database cannot be reached
every delivery is answered 4xx (the MTA keeps the message and retries), once it is
back deliveries succeed again, and every message answered 250 is in the store, once."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator

import pytest
from smtp_harness import Smtpd

from pg_proxy import CuttableProxy
from pg_testdb import scratch_database
from pushmail.store.interfaces import Store


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    with scratch_database() as url:
        relay = CuttableProxy(url)
        try:
            yield relay
        finally:
            relay.close()


def send(smtpd: Smtpd, n: int) -> int:
    """Deliver message ``n`` to alice over LMTP: the reply code (RCPT's if refused)."""
    body = f"Subject: message {n}\r\n\r\nbody {n}\r\n".encode()
    try:
        with smtplib.LMTP("127.0.0.1", smtpd.port("lmtp"), timeout=30) as client:
            client.ehlo_or_helo_if_needed()
            refused = client.sendmail("sender@remote.test", ["alice@example.org"], body)
    except smtplib.SMTPRecipientsRefused as e:
        return int(e.recipients["alice@example.org"][0])
    except smtplib.SMTPDataError as e:
        return int(e.smtp_code)
    except smtplib.SMTPResponseException as e:
        return int(e.smtp_code)
    return 250 if not refused else int(refused["alice@example.org"][0])


def test_deliveries_get_4xx_while_postgresql_is_away_and_none_acknowledged_is_lost(
    smtpd_factory: Callable[..., Smtpd], proxy: CuttableProxy
) -> None:
    from pushmail.store.pg_schema import new_pool
    from pushmail.store.postgres import PostgresStore

    # A short wait for a connection, so the outage answers quickly (default 10 s).
    pool = new_pool(proxy.url + "?connect_timeout=2", max_size=4, timeout=2.0)

    def open_store() -> Store:
        return PostgresStore(proxy.url, pool=pool)

    try:
        smtpd = smtpd_factory(open_store=open_store)
        acknowledged = []
        for n in range(3):
            assert send(smtpd, n) == 250
            acknowledged.append(n)
        proxy.cut()
        during = [send(smtpd, n) for n in range(3, 6)]
        assert all(400 <= code < 500 for code in during), during
        proxy.restore()
        for n in range(3, 6):  # the MTA's retries
            assert send(smtpd, n) == 250
            acknowledged.append(n)
        subjects = [
            next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject:"))
            for raw in smtpd.inbox("alice@example.org")
        ]
        assert subjects == [f"Subject: message {n}".encode() for n in acknowledged]
    finally:
        pool.close()
