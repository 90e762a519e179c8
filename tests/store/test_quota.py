"""Quotas (RFC 9208 STORAGE and MESSAGE) in the store, on every backend: usage kept
by the triggers through every path that adds or removes messages, the check in the
inserting transaction, and concurrent deliveries that cannot overrun a quota."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pushmail.store.interfaces import MessageCache, NewMessage, OverQuota, Quota, QuotaUsage, Store
from pushmail.store.quota import format_size, parse_size
from pushmail.store.sqlite import SqliteStore

OpenStore = Callable[[], Store]
CACHE = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')


def msg(n: int, size: int = 100) -> NewMessage:
    head = f"Subject: {n}\r\n\r\n".encode()
    return NewMessage(head + b"x" * (size - len(head)), CACHE)


def inbox(store: Store, user_id: int, name: str = "INBOX") -> int:
    box = store.get_mailbox(user_id, name)
    assert box is not None
    return box.id


def test_usage_follows_every_path(store: Store) -> None:
    u = store.create_user("alice@example.org", "h")
    box, other = inbox(store, u.id), inbox(store, u.id, "Trash")
    assert store.get_quota(u.id) == (Quota(), QuotaUsage(0, 0))
    store.deliver([(box, msg(1)), (box, msg(2, 200))])
    store.copy(box, [1, 2], other)
    assert store.get_quota(u.id)[1] == QuotaUsage(600, 4)
    store.copy(other, [1], box, move=True)
    assert store.get_quota(u.id)[1] == QuotaUsage(600, 4)
    store.store_flags(box, [1], "add", frozenset({"\\Deleted"}))
    assert store.counts(box).deleted_storage == 100  # STATUS DELETED-STORAGE
    store.expunge(box)
    assert store.get_quota(u.id)[1] == QuotaUsage(500, 3)
    store.delete_mailbox(u.id, "Trash")
    assert store.get_quota(u.id)[1] == QuotaUsage(300, 2)


def test_limits_refuse_append_copy_and_deliver(store: Store) -> None:
    u = store.create_user("alice@example.org", "h")
    box, other = inbox(store, u.id), inbox(store, u.id, "Trash")
    store.set_quota(u.id, Quota(storage=250, messages=10))
    assert store.get_quota(u.id)[0] == Quota(250, 10)
    store.deliver([(box, msg(1)), (box, msg(2))])
    with pytest.raises(OverQuota):  # 200 + 100 > 250
        store.append(box, msg(3))
    with pytest.raises(OverQuota):
        store.copy(box, [1], other)
    store.copy(box, [1, 2], other, move=True)  # a move changes no usage
    assert store.get_quota(u.id)[1] == QuotaUsage(200, 2)
    with pytest.raises(OverQuota):  # all or nothing: 240 fits, 240 + 100 does not
        store.deliver([(box, msg(4, 40)), (box, msg(5))])
    assert store.uids(box) == []
    store.set_quota(u.id, Quota(messages=2))
    with pytest.raises(OverQuota):
        store.append(box, msg(6))
    store.set_quota(u.id, Quota())
    store.append(box, msg(6))
    assert store.get_quota(u.id) == (Quota(), QuotaUsage(300, 3))


def test_deliver_within_quota_answers_per_target(store: Store) -> None:
    full = store.create_user("full@example.org", "h")
    free = store.create_user("free@example.org", "h")
    store.set_quota(full.id, Quota(storage=150))
    big, small = msg(1, 120), msg(2, 40)
    got = store.deliver_within_quota(
        [(inbox(store, full.id), big), (inbox(store, free.id), big), (inbox(store, full.id), big)]
    )
    assert [a is not None for a in got] == [True, True, False]
    got = store.deliver_within_quota([(inbox(store, full.id), small)])
    assert got == [None]
    assert store.get_quota(full.id)[1] == QuotaUsage(120, 1)


def test_concurrent_deliveries_cannot_exceed_the_quota(
    open_store: OpenStore, tmp_path: Path
) -> None:
    """Two store objects (two processes, or two nodes) race to fill one quota, each
    delivering to another of the user's mailboxes (one mailbox's row lock would
    serialise them anyway): the check and the insert are one transaction, so the
    limit holds exactly."""
    setup = open_store()
    u = setup.create_user("alice@example.org", "h")
    boxes = [inbox(setup, u.id), inbox(setup, u.id, "Trash")]
    setup.set_quota(u.id, Quota(messages=9))
    results: list[int] = []
    lock = threading.Lock()

    sqlite = isinstance(setup, SqliteStore)
    stores = [None if sqlite else open_store() for _ in range(2)]

    def worker(box: int, base: int, given: Store | None) -> None:
        # A SQLite connection is used and closed in the thread that opened it.
        store = given or SqliteStore(tmp_path / "store.sqlite3")  # conftest's file
        ok = 0
        for i in range(8):
            if store.deliver_within_quota([(box, msg(base + i))])[0] is not None:
                ok += 1
        if given is None:
            store.close()
        with lock:
            results.append(ok)

    threads = [
        threading.Thread(target=worker, args=(boxes[k], k * 100, stores[k])) for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 9
    assert setup.get_quota(u.id)[1].messages == 9 == sum(len(setup.uids(b)) for b in boxes)


def test_sizes() -> None:
    assert parse_size("100M") == 100 * 1024 * 1024
    assert parse_size("512k") == 512 * 1024
    assert parse_size("1000") == 1000
    assert format_size(parse_size("2G")) == "2G"
    with pytest.raises(ValueError):
        parse_size("lots")
