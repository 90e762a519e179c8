"""An SQLite store copied into PostgreSQL looks the same to every client: same ids,
UIDVALIDITY, UIDs, MODSEQs, flags, keywords, expunge history (issue 17, migrate)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pg_testdb import scratch_database
from pushmail.store.interfaces import MessageCache, NewMessage, Quota, Store
from pushmail.store.sqlite import SqliteStore

if os.environ.get("CI") != "true":  # in CI a missing driver fails the collection
    pytest.importorskip("psycopg_pool", reason="pip install -e '.[postgres]'")

import psycopg

from pushmail.store.pg_import import TargetNotEmpty, import_sqlite
from pushmail.store.postgres import PostgresStore

CACHE = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')


@pytest.fixture
def url() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def _fill(store: SqliteStore) -> None:
    """A store a client knows: flags, keywords, expunges, moves, a re-created box."""
    alice = store.create_user("alice@example.org", "{PLAIN}a")
    bob = store.create_user("bob@example.org", "{PLAIN}b")
    inbox = store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    for n in range(1, 8):
        flags = frozenset({"\\Seen", f"$k{n % 3}"} if n % 2 else {"\\Deleted"})
        store.append(
            inbox.id, NewMessage(f"Subject: {n}\r\n\r\n{n}\r\n".encode(), CACHE, flags, when)
        )
    store.expunge(inbox.id, [2, 4])
    work = store.create_mailbox(alice.id, "Work/2024")
    store.copy(inbox.id, [1, 3], work.id, move=True)
    store.create_mailbox(alice.id, "Old")
    store.delete_mailbox(alice.id, "Old")
    store.set_subscribed(alice.id, "ghost", True)
    store.claim_recent(inbox.id)
    bob_inbox = store.get_mailbox(bob.id, "INBOX")
    assert bob_inbox is not None
    store.deliver([(bob_inbox.id, NewMessage(b"Subject: same\r\n\r\nx\r\n", CACHE))] * 2)
    with_preview = MessageCache(CACHE.envelope, CACHE.bodystructure, CACHE.body, "déjà vu")
    store.append(bob_inbox.id, NewMessage(b"Subject: p\r\n\r\ndeja vu\r\n", with_preview))
    store.set_quota(bob.id, Quota(storage=10**6, messages=100))
    store.set_metadata(bob.id, None, [("/private/comment", b"\x00bin\xff")], 10)
    store.set_metadata(bob.id, bob_inbox.id, [("/shared/comment", b"inbox")], 10)


def _view(store: Store) -> list[object]:
    """Everything a client can learn from the store."""
    out: list[object] = []
    for user in store.list_users():
        out.append(user)
        out.append(store.subscriptions(user.id))
        out.append(store.get_quota(user.id))  # limits copied, usage rebuilt by triggers
        out.append(store.get_metadata(user.id, None))
        for box in store.list_mailboxes(user.id):
            info = store.select_info(box.id)
            out += [box, list(info.uids), info, store.counts(box.id)]
            out.append(store.get_metadata(user.id, box.id))
            out.append(store.changes_since(box.id, 0))
            for meta in store.list_messages(box.id):
                out += [store.get_raw(box.id, meta.uid), store.get_cache(box.id, meta.uid)]
    return out


def test_an_imported_store_looks_the_same_to_clients(tmp_path: Path, url: str) -> None:
    source = SqliteStore(tmp_path / "store.sqlite3")
    _fill(source)
    counter = source.create_mailbox(1, "probe").uidvalidity  # what the next would be
    source.delete_mailbox(1, "probe")
    before = _view(source)
    source.close()

    with psycopg.connect(url, autocommit=True) as conn:
        done = import_sqlite(tmp_path / "store.sqlite3", conn)
    assert done.counts["users"] == 2 and done.counts["expunged"] >= 4
    assert done.counts["previews"] == 1
    assert done.counts["sortkeys"] == done.counts["bodies"]  # kept at delivery, copied
    target = PostgresStore(url)
    try:
        assert _view(target) == before
        assert target.stored_texts()[0] == done.counts["bodies"]
        # Counters and identities go on from where SQLite stopped.
        assert target.create_mailbox(1, "after").uidvalidity > counter
        inbox = target.get_mailbox(1, "INBOX")
        assert inbox is not None
        assert target.append(inbox.id, NewMessage(b"Subject: new\r\n\r\n", CACHE)).uid == 8
        carol = target.create_user("carol@example.org", "h")
        assert carol.id == 3
        with psycopg.connect(url, autocommit=True) as conn, pytest.raises(TargetNotEmpty):
            import_sqlite(tmp_path / "store.sqlite3", conn)
    finally:
        target.close()
