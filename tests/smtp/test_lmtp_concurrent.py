"""Many LMTP clients at once over real sockets (so deliveries are group-committed):
every message the server acknowledged with 250 is in the store exactly once."""

from __future__ import annotations

import re
import smtplib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from smtp_harness import Smtpd

CLIENTS = 20
PER_CLIENT = 10
RECIPIENTS = ("alice@example.org", "bob@example.org")
SUBJECT = re.compile(rb"^Subject: (c\d+-m\d+)\r$", re.MULTILINE)


def client_run(port: int, client: int) -> list[tuple[str, str]]:
    """Send PER_CLIENT messages on one connection; the (recipient, subject) pairs that
    got a 250. Every second message goes to both users (two replies after DATA)."""
    acked: list[tuple[str, str]] = []
    with smtplib.LMTP("127.0.0.1", port, timeout=30) as lmtp:
        lmtp.ehlo_or_helo_if_needed()
        for n in range(PER_CLIENT):
            subject = f"c{client}-m{n}"
            rcpts = RECIPIENTS if n % 2 else RECIPIENTS[client % 2 :][:1]
            lmtp.mail("sender@remote.test")
            for rcpt in rcpts:
                assert lmtp.rcpt(rcpt)[0] == 250
            body = f"Subject: {subject}\r\n\r\nhello from {subject}\r\n".encode()
            replies = [lmtp.data(body)] + [lmtp.getreply() for _ in rcpts[1:]]
            acked += [
                (r, subject) for r, (code, _) in zip(rcpts, replies, strict=True) if code == 250
            ]
    return acked


def subjects(smtpd: Smtpd, address: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for raw in smtpd.inbox(address):
        match = SUBJECT.search(raw)
        assert match is not None
        found[match.group(1).decode()] += 1
    return found


def test_concurrent_clients_every_acknowledged_message_stored_once(smtpd: Smtpd) -> None:
    port = smtpd.port("lmtp")
    with ThreadPoolExecutor(CLIENTS) as pool:
        runs = list(pool.map(lambda c: client_run(port, c), range(CLIENTS)))
    acked = [pair for run in runs for pair in run]
    assert len(acked) == len(set(acked))
    # Nothing fails here, so every copy is acknowledged: 5 single + 5 double each.
    assert len(acked) == CLIENTS * (PER_CLIENT // 2) * 3
    for address in RECIPIENTS:
        stored = subjects(smtpd, address)
        expected = {s for r, s in acked if r == address}
        assert set(stored) == expected
        assert set(stored.values()) == {1}
    assert len(smtpd.publisher.events) == len(acked)  # one "new" event per stored copy
