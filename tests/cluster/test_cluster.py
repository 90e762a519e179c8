"""Several ``pushmail serve`` nodes on one PostgreSQL store and one NATS bus act as
one server (issue 17): a delivery on one node wakes an idler on another; a node
killed mid-stream loses nothing it acknowledged and its clients resync exactly on
another; a client syncing by UIDNEXT cursor never sees a hole while two nodes
deliver to its mailbox at once."""

from __future__ import annotations

import re
import signal
import smtplib
import threading
import time

from cluster_node import Imap, code_value

from conftest import PASSWORD, Cluster

USER = "user0@example.org"


def test_delivery_on_one_node_wakes_an_idler_on_another(pair: Cluster) -> None:
    """And idle sessions hold no database connection: with 30 of them on node B,
    the database serves no more than the two nodes' pools (4 each: the writer and
    reader store threads borrow one per call)."""
    a, b = pair.nodes
    clients = [Imap(b.imap, USER, PASSWORD) for _ in range(30)]
    for client in clients:
        client.ok("SELECT INBOX")
        client.idle()
    a.deliver(USER, "across")
    for client in clients:
        assert client.wait_for(rb"^\* \d+ EXISTS") == b"* 1 EXISTS"
    assert _connections(pair.store) <= 2 * 4
    for client in clients:
        client.done()
        client.close()


def _connections(url: str) -> int:
    """Connections to the database of ``url`` other than this one."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _qresync_select(client: Imap, uidvalidity: int, modseq: int) -> list[bytes]:
    client.ok("ENABLE QRESYNC")
    return client.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")


def test_cursor_sync_through_two_nodes_never_skips_a_uid(pair: Cluster) -> None:
    """Two LMTP streams into one mailbox through both nodes while a third client
    syncs by cursor: each pass reads UIDNEXT, then asks for UIDs from its cursor.
    Every UID below that UIDNEXT must be visible and the answer must have no hole,
    or a client keeping a UIDNEXT cursor would skip a message for good (issue 17,
    "UID and MODSEQ order across nodes"). The store-level version with many more
    rounds is tests/store/test_postgres_store.py."""
    user, per_node = "user2@example.org", 150
    failed: list[BaseException] = []

    def stream(port: int, tag: str) -> None:
        try:
            with smtplib.LMTP("127.0.0.1", port, timeout=30) as lmtp:
                for n in range(per_node):
                    lmtp.sendmail("s@example.net", [user], _msg(f"{tag} {n}"))
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(exc)

    senders = [
        threading.Thread(target=stream, args=(n.lmtp, f"via {i}")) for i, n in enumerate(pair.nodes)
    ]
    syncer = Imap(pair.nodes[1].imap, user, PASSWORD)
    syncer.ok("EXAMINE INBOX")
    for t in senders:
        t.start()
    cursor, passes, holes = 1, 0, []
    while cursor <= 2 * per_node and not failed:
        found = re.search(rb"UIDNEXT (\d+)", b" ".join(syncer.ok("STATUS INBOX (UIDNEXT)")))
        assert found is not None
        uidnext = int(found.group(1))
        syncer.ok("NOOP")
        uids = syncer.uids(f"UID {cursor}:4294967295")
        expected = list(range(cursor, cursor + len(uids)))
        if uids != expected or cursor + len(uids) < uidnext:  # a hole, or one unseen
            holes.append((cursor, uidnext, uids[:5]))
        cursor += len(uids)
        passes += 1
    for t in senders:
        t.join(60)
    assert not failed
    assert not holes, holes[:3]
    assert cursor == 2 * per_node + 1
    print(f"{passes} cursor passes")
    syncer.close()


def test_kill_9_mid_stream_loses_nothing_acknowledged(pair: Cluster) -> None:
    """Node A takes an LMTP stream and is killed with SIGKILL in the middle of it:
    every message A acknowledged is in the store, and a client of A reconnects to
    B and, with QRESYNC, is told of exactly the messages it did not know."""
    a, b = pair.nodes
    user = "user1@example.org"
    for n in range(5):
        a.deliver(user, f"before {n}")
    client = Imap(a.imap, user, PASSWORD)
    client.ok("ENABLE QRESYNC")
    selected = client.ok("SELECT INBOX")
    uidvalidity = code_value(selected, "UIDVALIDITY")
    client.ok("UID STORE 2 +FLAGS (\\Seen)")
    modseq = _highestmodseq(client)
    known = client.uids()
    acked: list[str] = []
    failed: list[BaseException] = []

    def stream() -> None:
        try:
            with smtplib.LMTP("127.0.0.1", a.lmtp, timeout=30) as lmtp:
                for n in range(10_000):
                    lmtp.sendmail("s@example.net", [user], _msg(f"stream {n}"))
                    acked.append(f"stream {n}")
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(exc)

    sender = threading.Thread(target=stream)
    sender.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a.proc is not None
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    sender.join(30)
    assert failed, "the stream outlived its node"
    assert len(acked) >= 20
    try:
        client.line()
        client.line()
    except (ConnectionError, OSError):
        pass
    client.close()

    again = Imap(b.imap, user, PASSWORD)
    selected = _qresync_select(again, uidvalidity, modseq)
    reported = {int(m.group(1)) for m in map(re.compile(rb"UID (\d+)").search, selected) if m}
    assert not [line for line in selected if b"VANISHED" in line]
    everything = again.uids()
    assert set(known) | reported == set(everything)
    assert reported == set(everything) - set(known)
    subjects = _subjects(again)
    assert set(acked) <= subjects, sorted(set(acked) - subjects)[:5]
    again.close()


def _highestmodseq(client: Imap) -> int:
    found = re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(client.ok("STATUS INBOX (HIGHESTMODSEQ)")))
    assert found is not None
    return int(found.group(1))


def _msg(subject: str) -> bytes:
    return f"From: s@example.net\r\nSubject: {subject}\r\n\r\n{subject}\r\n".encode()


def _subjects(client: Imap) -> set[str]:
    lines = client.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return {
        line.decode().removeprefix("Subject: ").strip()
        for line in lines
        if line.startswith(b"Subject: ")
    }
