"""Delivery: one durable transaction, then one event per INBOX, one reply per RCPT."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pushmail.delivery import Deliverer, RecipientResult, normalize_crlf
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.local import LocalBus
from pushmail.store.interfaces import Appended, MessageCache, NewMessage, Quota, StoreError
from pushmail.store.sqlite import SqliteStore

RAW = b"From: x@y\r\nSubject: hi\r\n\r\nhello\r\n"


def simple_cache(raw: bytes) -> MessageCache:
    """Enough of a cache for delivery; the real one is pushmail.mime's business."""
    return MessageCache(b"NIL", b"NIL", str(len(raw)).encode())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db")
    yield s
    s.close()


class Recorder:
    def __init__(self) -> None:
        self.events: list[MailboxChanged] = []

    def publish(self, event: MailboxChanged) -> None:
        self.events.append(event)


def test_reply_text() -> None:
    r = RecipientResult("a@b", 250, "2.1.5", "delivered")
    assert r.reply() == "250 2.1.5 <a@b> delivered" and r.ok
    assert not RecipientResult("a@b", 550, "5.1.1", "no").ok


def test_normalize_crlf() -> None:
    assert normalize_crlf(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"
    assert normalize_crlf(b"a\r\nb\r\n") == b"a\r\nb\r\n"
    assert normalize_crlf(b"no newline") == b"no newline"
    assert normalize_crlf(b"lone\rcr\n") == b"lone\rcr\r\n"
    assert normalize_crlf(b"\n\n") == b"\r\n\r\n"


def test_resolve(store: SqliteStore) -> None:
    alice = store.create_user("alice@example.org", "h")
    tagged = store.create_user("bob+list@example.org", "h")
    d = Deliverer(store, Recorder(), make_cache=simple_cache)
    assert d.resolve("Alice@Example.ORG") == alice
    assert d.resolve("<alice+news@example.org>") == alice
    assert d.resolve("alice+a+b@example.org") == alice
    assert d.resolve("bob+list@example.org") == tagged  # an exact match wins
    assert d.resolve("nobody@example.org") is None
    assert d.resolve("+x@example.org") is None
    assert d.resolve("alice") is None


def test_deliver_stores_then_publishes_and_replies_in_order(store: SqliteStore) -> None:
    alice = store.create_user("alice@x", "h")
    bob = store.create_user("bob@x", "h")
    rec = Recorder()
    d = Deliverer(store, rec, make_cache=simple_cache)
    results = d.deliver(["Bob@x", "ghost@x", "alice+t@x", "alice@x"], RAW)
    assert [(r.address, r.code, r.enhanced) for r in results] == [
        ("Bob@x", 250, "2.1.5"),
        ("ghost@x", 550, "5.1.1"),
        ("alice+t@x", 250, "2.1.5"),
        ("alice@x", 250, "2.1.5"),
    ]
    a_box = store.get_mailbox(alice.id, "INBOX")
    b_box = store.get_mailbox(bob.id, "INBOX")
    assert a_box is not None and b_box is not None
    assert store.uids(a_box.id) == [1]  # named twice, stored once
    assert store.get_raw(a_box.id, 1) == RAW and store.get_raw(b_box.id, 1) == RAW
    assert store.get_cache(b_box.id, 1) == simple_cache(RAW)
    assert rec.events == [
        MailboxChanged(bob.id, b_box.id, b_box.highestmodseq, "new"),
        MailboxChanged(alice.id, a_box.id, a_box.highestmodseq, "new"),
    ]


def test_unknown_only_stores_and_publishes_nothing(store: SqliteStore) -> None:
    rec = Recorder()
    d = Deliverer(store, rec, make_cache=simple_cache)
    assert [r.code for r in d.deliver(["a@x", "b@x"], RAW)] == [550, 550]
    assert rec.events == []


def test_listeners_find_the_message_already_stored(store: SqliteStore) -> None:
    alice = store.create_user("alice@x", "h")
    bus = LocalBus()
    seen: list[bytes] = []
    bus.subscribe(alice.id, lambda e: seen.append(store.get_raw(e.mailbox_id, 1)))
    Deliverer(store, bus, make_cache=simple_cache).deliver(["alice@x"], RAW)
    assert seen == [RAW]


class FailingStore(SqliteStore):
    def deliver_within_quota(
        self, targets: Sequence[tuple[int, NewMessage]]
    ) -> list[Appended | None]:
        raise StoreError("disk full")


def test_store_failure_is_temporary_for_everyone(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "db")
    store.create_user("alice@x", "h")
    rec = Recorder()
    results = Deliverer(store, rec, make_cache=simple_cache).deliver(["alice@x", "nobody@x"], RAW)
    assert [(r.code, r.enhanced) for r in results] == [(451, "4.3.0"), (451, "4.3.0")]
    assert rec.events == []
    store.close()


def test_parse_failure_is_temporary(store: SqliteStore) -> None:
    store.create_user("alice@x", "h")

    def broken(raw: bytes) -> MessageCache:
        raise ValueError("parser bug")

    results = Deliverer(store, Recorder(), make_cache=broken).deliver(["alice@x"], RAW)
    assert results[0].code == 451


def test_too_big(store: SqliteStore) -> None:
    store.create_user("alice@x", "h")
    rec = Recorder()
    d = Deliverer(store, rec, make_cache=simple_cache, max_size=10)
    assert d.deliver(["alice@x"], RAW)[0].reply() == "552 5.3.4 <alice@x> message too big"
    assert rec.events == []


def test_publish_failure_still_delivers(store: SqliteStore) -> None:
    alice = store.create_user("alice@x", "h")

    class Broken:
        def publish(self, event: MailboxChanged) -> None:
            raise OSError("bus down")

    results = Deliverer(store, Broken(), make_cache=simple_cache).deliver(["alice@x"], RAW)
    assert results[0].code == 250
    box = store.get_mailbox(alice.id, "INBOX")
    assert box is not None and store.uids(box.id) == [1]


def test_default_cache_builder_is_the_mime_package(store: SqliteStore) -> None:
    from pushmail.imap.structure import build_cache

    assert Deliverer(store, Recorder())._make_cache is build_cache


def test_over_quota_recipient_is_deferred_alone(store: SqliteStore) -> None:
    """One transaction, two recipients: the one over quota gets 452 4.2.2 (the MTA
    retries it), the other is stored."""
    full = store.create_user("full@x", "h")
    store.create_user("free@x", "h")
    store.set_quota(full.id, Quota(storage=len(RAW) + 10))
    deliverer = Deliverer(store, Recorder(), make_cache=simple_cache)
    first = deliverer.deliver(["full@x", "free@x"], RAW)
    assert [r.code for r in first] == [250, 250]
    second = deliverer.deliver(["full@x", "free@x"], RAW)
    assert [(r.code, r.enhanced) for r in second] == [(452, "4.2.2"), (250, "2.1.5")]
    assert second[0].reply() == "452 4.2.2 <full@x> mailbox full, try again later"
    assert store.get_quota(full.id)[1].messages == 1


def test_message_larger_than_the_quota_is_refused_for_good(store: SqliteStore) -> None:
    full = store.create_user("full@x", "h")
    store.set_quota(full.id, Quota(storage=len(RAW) - 1))
    deliverer = Deliverer(store, Recorder(), make_cache=simple_cache)
    (result,) = deliverer.deliver(["full@x"], RAW)
    assert (result.code, result.enhanced) == (552, "5.2.2")  # it could never fit
