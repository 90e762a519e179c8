"""The push database's protocol, the same tests on every backend (SQLite, PostgreSQL),
and what only the shared backend promises: several nodes claiming from one queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pg_testdb import scratch_database
from pushmail.push.alert import Alert
from pushmail.push.db import Device, NewAlert, PushDB
from pushmail.push.db_open import open_push_db, push_db_url
from pushmail.push.rules import Rules

OpenDB = Callable[[], PushDB]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenDB]:
    opened: list[PushDB] = []
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = push_db_url(None, tmp_path)
        else:
            url = stack.enter_context(scratch_database())
            assert push_db_url(url, tmp_path) == url  # the store's database

        def factory() -> PushDB:
            db = open_push_db(url, lease=60.0)
            opened.append(db)
            return db

        try:
            yield factory
        finally:
            for db in opened:
                db.close()


@pytest.fixture
def pg_db(tmp_path: Path) -> Iterator[OpenDB]:
    opened: list[PushDB] = []
    with scratch_database() as url:

        def factory() -> PushDB:
            db = open_push_db(url, lease=60.0)
            opened.append(db)
            return db

        try:
            yield factory
        finally:
            for db in opened:
                db.close()


def hook(user: int = 7, path: str = "/h") -> Device:
    return Device(0, user, "webhook", f"https://hooks.example{path}", secret="s" * 20)


def alert(new: int = 1) -> Alert:
    return Alert("acct", "INBOX", new, new, new)


def test_secrets_are_made_once_and_shared(open_db: OpenDB) -> None:
    a, b = open_db(), open_db()
    assert len(a.secret()) == 32 and a.secret() == b.secret()
    made: list[int] = []

    def make() -> bytes:
        made.append(1)
        return b"pem %d" % len(made)

    assert a.vapid_pem(make) == b"pem 1"
    assert b.vapid_pem(make) == b"pem 1"  # the first one's, not a new one
    a.close()
    assert open_db().vapid_pem(make) == b"pem 1"


def test_devices_are_upserted_by_endpoint_and_removed_with_their_rules(open_db: OpenDB) -> None:
    db = open_db()
    d = db.add_device(hook())
    again = db.add_device(Device(0, 7, "webhook", d.endpoint, secret="t" * 20, label="two"))
    assert again.id == d.id and again.label == "two" and again.secret == "t" * 20
    other = db.add_device(hook(8))
    assert [x.id for x in db.devices(7)] == [d.id]
    assert [x.id for x in db.devices()] == [d.id, other.id]
    assert db.device(d.id) == again and db.device(10**9) is None
    with pytest.raises(ValueError):
        db.add_device(Device(0, 7, "webhook", "https://x.example/", secret=""))
    db.set_rules(7, Rules(), d.id)
    db.enqueue(d.id, "t", alert(), 0.0, 0.0, 100.0)
    assert db.remove_device(d.id) and not db.remove_device(d.id)
    assert db.rules(7, d.id) is None and db.queued() == 0


def test_rules_of_a_user_and_of_a_device(open_db: OpenDB) -> None:
    db = open_db()
    assert db.rules(7) is None
    rules = Rules.from_json({"folders": ["INBOX"]})
    db.set_rules(7, rules)
    db.set_rules(7, Rules(), 3)
    assert db.rules(7) == rules and db.rules(7, 3) == Rules()
    db.set_rules(7, Rules())
    assert db.rules(7) == Rules()
    db.set_rules(7, None)
    assert db.rules(7) is None and db.rules(7, 3) == Rules()


def test_advance_moves_the_cursor_only_from_where_the_caller_saw_it(open_db: OpenDB) -> None:
    a, b = open_db(), open_db()
    d = a.add_device(hook())
    one = [NewAlert(d.id, "t", alert())]
    assert a.advance(7, 1, None, (5, 10), one, 0.0, 0.0, 100.0)
    assert not b.advance(7, 1, None, (5, 10), one, 0.0, 0.0, 100.0)  # another took it
    assert not b.advance(7, 1, (4, 9), (6, 11), one, 0.0, 0.0, 100.0)
    assert a.queued() == 1 and b.cursor(7, 1) == (5, 10)
    assert b.advance(7, 1, (5, 10), (6, 11), one, 0.0, 0.0, 100.0)
    assert a.cursor(7, 1) == (6, 11) and a.queued() == 1  # merged into the first
    a.set_cursor(7, 2, 1, 1)
    a.drop_cursor(7, 2)
    assert a.cursor(7, 2) is None


def test_queue_merges_claims_one_per_device_and_rate_limits(open_db: OpenDB) -> None:
    db = open_db()
    t = 1000.0  # wall-clock seconds: well after the devices' last alert (never)
    d1, d2 = db.add_device(hook(path="/1")), db.add_device(hook(path="/2"))
    for _ in range(3):
        db.enqueue(d1.id, "t", alert(), t, 2.0, 100.0)
    db.enqueue(d1.id, "u", alert(), t, 2.0, 100.0)
    db.enqueue(d2.id, "t", alert(), t, 2.0, 100.0)
    assert db.queued() == 3 and db.queued(d1.id) == 2
    assert db.claim_due(t + 1, 30.0, 10) == []  # held for more mail
    assert db.next_due(30.0) == t + 2
    claimed = db.claim_due(t + 2, 30.0, 10)
    assert sorted(c.device.id for c in claimed) == [d1.id, d2.id]
    first = next(c for c in claimed if c.device.id == d1.id)
    assert first.topic == "t" and first.alert.new == 3
    for c in claimed:
        db.sent(c, t + 2)
    assert db.queued() == 1
    assert db.claim_due(t + 3, 30.0, 10) == []  # d1 was sent to a second ago
    assert db.next_due(30.0) == t + 32
    db.enqueue(d1.id, "test", alert(), t + 3, 0.0, 100.0, rate_limited=False)
    [test] = db.claim_due(t + 3, 30.0, 10)
    assert test.topic == "test"
    db.give_up(test)
    [late] = db.claim_due(t + 32, 30.0, 10)
    assert late.topic == "u"


def test_a_failed_alert_is_retried_merged_or_dropped_at_its_deadline(open_db: OpenDB) -> None:
    db = open_db()
    d = db.add_device(hook())
    db.enqueue(d.id, "t", alert(2), 0.0, 0.0, 100.0)
    [item] = db.claim_due(0.0, 0.0, 10)
    db.enqueue(d.id, "t", alert(3), 1.0, 0.0, 100.0)  # arrives while the first is in flight
    assert db.queued() == 2
    assert db.retry_later(item, 5.0)
    assert db.queued() == 1
    [merged] = db.claim_due(10.0, 0.0, 10)
    assert merged.alert.new == 5
    assert db.retry_later(merged, 20.0)
    assert db.claim_due(19.0, 0.0, 10) == []
    [again] = db.claim_due(20.0, 0.0, 10)
    assert again.attempts == 1
    assert not db.retry_later(again, 102.0)  # past the (newer) deadline: dropped
    assert db.queued() == 0


# -- several nodes on one PostgreSQL database -----------------------------------------


def test_two_nodes_never_claim_the_same_alert_nor_one_device_twice(pg_db: OpenDB) -> None:
    a, b = pg_db(), pg_db()
    devices = [a.add_device(hook(path=f"/{i}")) for i in range(6)]
    for d in devices:
        a.enqueue(d.id, "t", alert(), 0.0, 0.0, 100.0)
        a.enqueue(d.id, "u", alert(), 0.0, 0.0, 100.0)  # a second topic: same device
    first = a.claim_due(1.0, 0.0, 4)
    second = b.claim_due(1.0, 0.0, 10)
    assert len(first) == 4 and len(second) == 2
    ids = [c.id for c in first + second]
    assert len(set(ids)) == len(ids)
    assert len({c.device.id for c in first + second}) == 6  # one per device in flight
    for c in first:
        b.sent(c, 1.0)  # any node may record the outcome of a claim
    again = b.claim_due(1.0, 0.0, 10)
    assert {c.device.id for c in again} == {c.device.id for c in first}


def test_a_claim_of_a_dead_node_is_taken_over_when_its_lease_ends(pg_db: OpenDB) -> None:
    a, b = pg_db(), pg_db()
    d = a.add_device(hook())
    a.enqueue(d.id, "t", alert(4), 0.0, 0.0, 1000.0)
    [lost] = a.claim_due(1.0, 0.0, 10)
    a.close()  # the node dies with the alert claimed
    assert b.claim_due(60.0, 0.0, 10) == []  # lease of 60 s from 1.0
    assert b.next_due(0.0) == 61.0
    [taken] = b.claim_due(61.0, 0.0, 10)
    assert taken.id == lost.id and taken.alert.new == 4
    b.sent(lost, 62.0)  # the dead node's late outcome: no longer its claim
    assert b.queued() == 1
    b.sent(taken, 62.0)
    assert b.queued() == 0
