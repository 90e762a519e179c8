"""The store contract (``pushmail.store.interfaces``), run against every backend.

Each test names the invariant it guards; sessions rely on all of them to give
clients an exact view (UIDs, UIDVALIDITY, MODSEQ, expunges).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushmail.store.interfaces import (
    DEFAULT_MAILBOXES,
    AlreadyExists,
    Conflict,
    FlagMode,
    MessageCache,
    NewMessage,
    NotFound,
    Store,
    User,
)

OpenStore = Callable[[], Store]  # the ``open_store`` fixture (see conftest.py)

CACHE = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')


def msg(n: int, flags: frozenset[str] = frozenset(), when: datetime | None = None) -> NewMessage:
    raw = f"Subject: {n}\r\n\r\nbody {n}\r\n".encode()
    return NewMessage(raw, CACHE, flags, when)


def user(store: Store, address: str = "alice@example.org") -> User:
    return store.create_user(address, "hash")


def inbox(store: Store, u: User) -> int:
    box = store.get_mailbox(u.id, "INBOX")
    assert box is not None
    return box.id


# -- users ----------------------------------------------------------------------


def test_create_user_lowercases_and_makes_default_mailboxes(store: Store) -> None:
    u = store.create_user("Alice@Example.ORG", "h1")
    assert u.address == "alice@example.org"
    assert store.get_user("ALICE@example.org") == u
    assert store.get_user_by_id(u.id) == u
    names = {m.name: m for m in store.list_mailboxes(u.id)}
    assert set(names) == {name for name, _ in DEFAULT_MAILBOXES}
    for name, special_use in DEFAULT_MAILBOXES:
        assert names[name].special_use == special_use
        assert names[name].uidnext == 1
    assert [m.name for m in store.list_mailboxes(u.id)] == sorted(names)
    with pytest.raises(AlreadyExists):
        store.create_user("alice@EXAMPLE.org", "h2")


def test_user_password_list_and_delete(store: Store) -> None:
    a = user(store, "a@x")
    b = user(store, "b@x")
    assert [u.address for u in store.list_users()] == ["a@x", "b@x"]
    store.set_password("A@X", "new")
    got = store.get_user("a@x")
    assert got is not None and got.password_hash == "new"
    assert "new" not in repr(got)
    with pytest.raises(NotFound):
        store.set_password("nobody@x", "h")
    store.append(inbox(store, a), msg(1))
    store.delete_user("a@x")
    assert store.get_user("a@x") is None
    assert store.list_mailboxes(a.id) == []
    assert store.get_user("b@x") == b
    with pytest.raises(NotFound):
        store.delete_user("a@x")


def test_create_users_in_bulk_skips_or_updates_existing(store: Store) -> None:
    store.create_user("old@example.org", "old-hash")
    pairs = [("New1@Example.org", "h1"), ("old@example.org", "h-new"), ("new2@example.org", "h2")]
    assert store.create_users(pairs) == 2
    old = store.get_user("old@example.org")
    assert old is not None and old.password_hash == "old-hash"
    new1 = store.get_user("new1@example.org")
    assert new1 is not None and new1.password_hash == "h1"
    boxes = store.list_mailboxes(new1.id)
    assert {(b.name, b.special_use) for b in boxes} == set(DEFAULT_MAILBOXES)
    assert sorted(store.subscriptions(new1.id)) == sorted(n for n, _ in DEFAULT_MAILBOXES)
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    assert store.create_users([("old@example.org", "h-new"), ("x@example.org", "hx")], True) == 1
    old = store.get_user("old@example.org")
    assert old is not None and old.password_hash == "h-new"
    assert store.create_users([]) == 0


def test_unknown_user_lookups_return_none(store: Store) -> None:
    assert store.get_user("nobody@x") is None
    assert store.get_user_by_id(999) is None


# -- mailboxes ------------------------------------------------------------------


def test_create_mailbox_makes_parents(store: Store) -> None:
    u = user(store)
    box = store.create_mailbox(u.id, "a/b/c", special_use="\\Archive")
    assert box.name == "a/b/c" and box.special_use == "\\Archive"
    assert store.get_mailbox(u.id, "a") is not None
    assert store.get_mailbox(u.id, "a/b") is not None
    assert store.get_mailbox_by_id(box.id) == box
    with pytest.raises(AlreadyExists):
        store.create_mailbox(u.id, "a/b")
    with pytest.raises(AlreadyExists):
        store.create_mailbox(u.id, "INBOX")


def test_names_are_case_sensitive_except_inbox(store: Store) -> None:
    u = user(store)
    store.create_mailbox(u.id, "Work")
    store.create_mailbox(u.id, "work")
    assert store.get_mailbox(u.id, "Work") != store.get_mailbox(u.id, "work")
    assert store.get_mailbox(u.id, "inbox") == store.get_mailbox(u.id, "INBOX")


def test_invalid_names_are_refused(store: Store) -> None:
    u = user(store)
    for bad in ("", "a//b", "/a"):
        with pytest.raises(Conflict):
            store.create_mailbox(u.id, bad)


def test_recreated_mailbox_gets_a_larger_uidvalidity(store: Store) -> None:
    u = user(store)
    first = store.create_mailbox(u.id, "x")
    store.delete_mailbox(u.id, "x")
    assert store.get_mailbox(u.id, "x") is None
    second = store.create_mailbox(u.id, "x")
    assert second.uidvalidity > first.uidvalidity
    assert 0 < second.uidvalidity <= 0xFFFFFFFF


def test_delete_mailbox(store: Store) -> None:
    u = user(store)
    with pytest.raises(Conflict):
        store.delete_mailbox(u.id, "INBOX")
    with pytest.raises(NotFound):
        store.delete_mailbox(u.id, "nope")
    box = store.create_mailbox(u.id, "x")
    store.append(box.id, msg(1))
    store.delete_mailbox(u.id, "x")
    assert store.get_mailbox_by_id(box.id) is None
    assert store.list_messages(box.id) == []


def test_rename_moves_children_and_keeps_messages(store: Store) -> None:
    u = user(store)
    a = store.create_mailbox(u.id, "a/b/c")
    store.append(a.id, msg(1))
    parent = store.get_mailbox(u.id, "a")
    assert parent is not None
    store.rename_mailbox(u.id, "a", "x/y")
    names = {m.name for m in store.list_mailboxes(u.id)}
    assert {"x", "x/y", "x/y/b", "x/y/b/c"} <= names
    assert not {"a", "a/b", "a/b/c"} & names
    moved = store.get_mailbox(u.id, "x/y/b/c")
    assert moved is not None and moved.id == a.id and moved.uidvalidity == a.uidvalidity
    assert [m.uid for m in store.list_messages(moved.id)] == [1]


def test_rename_refusals(store: Store) -> None:
    u = user(store)
    store.create_mailbox(u.id, "a")
    store.create_mailbox(u.id, "b")
    with pytest.raises(AlreadyExists):
        store.rename_mailbox(u.id, "a", "b")
    with pytest.raises(NotFound):
        store.rename_mailbox(u.id, "nope", "c")
    with pytest.raises(Conflict):
        store.rename_mailbox(u.id, "a", "a/inner")
    store.create_mailbox(u.id, "a/kid")
    store.create_mailbox(u.id, "c/kid")
    with pytest.raises(AlreadyExists):  # a child's new name is taken
        store.rename_mailbox(u.id, "a", "c")
    assert store.get_mailbox(u.id, "a/kid") is not None  # nothing half-done


def test_rename_inbox_moves_messages_and_leaves_inbox_empty(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    store.append(ib, msg(1, frozenset({"\\Seen"})))
    store.append(ib, msg(2))
    store.create_mailbox(u.id, "INBOX/kid")
    store.rename_mailbox(u.id, "INBOX", "Old")
    old = store.get_mailbox(u.id, "Old")
    assert old is not None
    metas = store.list_messages(old.id)
    assert [m.uid for m in metas] == [1, 2]
    assert metas[0].flags == {"\\Seen"}
    assert store.get_raw(old.id, 2) == msg(2).raw
    box = store.get_mailbox(u.id, "INBOX")
    assert box is not None and box.id == ib and box.uidnext == 3
    assert store.list_messages(ib) == []
    assert store.changes_since(ib, 0).expunged == (1, 2)
    assert store.get_mailbox(u.id, "INBOX/kid") is not None  # children stay


def test_subscriptions(store: Store) -> None:
    u = user(store)
    assert set(store.subscriptions(u.id)) >= {"INBOX"}
    store.set_subscribed(u.id, "ghost/box", True)  # need not exist
    store.set_subscribed(u.id, "ghost/box", True)  # idempotent
    assert "ghost/box" in store.subscriptions(u.id)
    box = store.create_mailbox(u.id, "ghost/box")
    assert box.subscribed
    store.set_subscribed(u.id, "ghost/box", False)
    assert "ghost/box" not in store.subscriptions(u.id)
    again = store.get_mailbox(u.id, "ghost/box")
    assert again is not None and not again.subscribed


# -- messages -------------------------------------------------------------------


def test_append_allocates_uids_and_modseqs(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    before = store.get_mailbox_by_id(ib)
    assert before is not None
    a1 = store.append(ib, msg(1))
    a2 = store.append(ib, msg(2))
    assert (a1.uid, a2.uid) == (1, 2)
    assert a1.uidvalidity == before.uidvalidity and a1.mailbox_id == ib
    assert before.highestmodseq < a1.modseq < a2.modseq
    after = store.get_mailbox_by_id(ib)
    assert after is not None and after.uidnext == 3 and after.highestmodseq == a2.modseq
    assert store.uids(ib) == [1, 2]
    with pytest.raises(NotFound):
        store.append(999, msg(3))


def test_message_metadata_round_trips(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    store.append(ib, msg(1, frozenset({"\\seen", "$Label", "\\Recent"}), when))
    (meta,) = store.list_messages(ib)
    assert meta.flags == {"\\Seen", "$Label"}  # canonical system flags, no \Recent
    assert meta.internaldate == when
    assert meta.internaldate.utcoffset() == when.utcoffset()
    assert meta.size == len(msg(1).raw)
    assert store.get_raw(ib, 1) == msg(1).raw
    assert store.get_cache(ib, 1) == CACHE
    with pytest.raises(NotFound):
        store.get_raw(ib, 2)
    with pytest.raises(NotFound):
        store.get_cache(ib, 2)


def test_default_internaldate_is_now(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    store.append(ib, msg(1))
    (meta,) = store.list_messages(ib)
    assert abs((datetime.now(UTC) - meta.internaldate).total_seconds()) < 5


def test_select_info_agrees_with_the_full_listing(store: Store) -> None:
    """SELECT builds its view from ``select_info``: it must say what ``list_messages``
    would (UIDs ascending, first message without \\Seen, highest MODSEQ) in one go."""
    u = user(store)
    ib = inbox(store, u)
    empty = store.select_info(ib)
    box = store.get_mailbox_by_id(ib)
    assert box is not None
    assert list(empty.uids) == [] and empty.first_unseen_uid is None
    assert (empty.highestmodseq, empty.uidnext) == (box.highestmodseq, box.uidnext)
    seen = frozenset({"\\Seen"})
    flags = [seen, seen | {"$Label"}, frozenset({"$Seenish"}), frozenset(), frozenset()]
    for n, f in enumerate(flags, 1):
        store.append(ib, msg(n, f))
    assert store.select_info(ib).first_unseen_uid == 3  # "$Seenish" is not \\Seen
    store.store_flags(ib, [3], "add", frozenset({"\\Seen", "\\Deleted"}))
    store.store_flags(ib, [4], "add", frozenset({"\\Deleted"}))
    assert store.expunge(ib, [4]) == [4]
    info = store.select_info(ib)
    metas = store.list_messages(ib)
    box = store.get_mailbox_by_id(ib)
    assert box is not None
    assert list(info.uids) == [m.uid for m in metas] == [1, 2, 3, 5]
    assert info.first_unseen_uid == 5
    assert info.highestmodseq == box.highestmodseq >= max(m.modseq for m in metas)
    assert info.uidnext == box.uidnext == 6
    store.store_flags(ib, [5], "add", seen)
    assert store.select_info(ib).first_unseen_uid is None
    with pytest.raises(NotFound):
        store.select_info(999)


def test_get_messages_filters_and_sorts(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    for n in range(1, 6):
        store.append(ib, msg(n))
    assert [m.uid for m in store.get_messages(ib, [5, 2, 99, 3])] == [2, 3, 5]
    assert store.get_messages(ib, []) == []


def test_deliver_is_one_batch_and_stores_body_once(store: Store) -> None:
    users = [user(store, f"u{i}@x") for i in range(20)]
    message = msg(1)
    results = store.deliver([(inbox(store, u), message) for u in users])
    assert [r.uid for r in results] == [1] * 20
    assert [r.mailbox_id for r in results] == [inbox(store, u) for u in users]
    for u in users:
        assert store.get_raw(inbox(store, u), 1) == message.raw
    assert _body_rows(store) == 1


def test_deliver_to_a_missing_mailbox_stores_nothing(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    with pytest.raises(NotFound):
        store.deliver([(ib, msg(1)), (999, msg(1))])
    assert store.list_messages(ib) == []
    box = store.get_mailbox_by_id(ib)
    assert box is not None and box.uidnext == 1


def test_deliver_same_mailbox_twice(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    got = store.deliver([(ib, msg(1)), (ib, msg(2))])
    assert [g.uid for g in got] == [1, 2]
    assert got[0].modseq < got[1].modseq


def test_store_flags_modes_and_modseq(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    for n in range(1, 4):
        store.append(ib, msg(n))
    res = store.store_flags(ib, [1, 2], "add", frozenset({"\\Seen", "x"}))
    assert [m.uid for m in res.changed] == [1, 2] and res.modified == ()
    modseq = res.changed[0].modseq
    assert all(m.flags == {"\\Seen", "x"} and m.modseq == modseq for m in res.changed)
    box = store.get_mailbox_by_id(ib)
    assert box is not None and box.highestmodseq == modseq
    # A change that changes nothing keeps MODSEQ and HIGHESTMODSEQ.
    noop = store.store_flags(ib, [1], "add", frozenset({"\\Seen"}))
    assert noop.changed == ()
    box = store.get_mailbox_by_id(ib)
    assert box is not None and box.highestmodseq == modseq
    res = store.store_flags(ib, [1], "remove", frozenset({"x"}))
    assert res.changed[0].flags == {"\\Seen"} and res.changed[0].modseq > modseq
    res = store.store_flags(ib, [2, 3], "set", frozenset({"\\Flagged", "\\Recent"}))
    assert [m.flags for m in res.changed] == [{"\\Flagged"}, {"\\Flagged"}]
    metas = store.list_messages(ib)
    assert [m.flags for m in metas] == [{"\\Seen"}, {"\\Flagged"}, {"\\Flagged"}]
    assert metas[1].modseq == metas[2].modseq > metas[0].modseq


def test_unchangedsince_reports_modified(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    a1 = store.append(ib, msg(1))
    store.append(ib, msg(2))
    later = store.store_flags(ib, [2], "add", frozenset({"x"})).changed[0].modseq
    res = store.store_flags(ib, [1, 2], "add", frozenset({"\\Seen"}), unchangedsince=a1.modseq)
    assert [m.uid for m in res.changed] == [1]
    assert res.modified == (2,)
    (two,) = store.get_messages(ib, [2])
    assert two.flags == {"x"} and two.modseq == later


def test_expunge_removes_deleted_and_records_them(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    for n in range(1, 6):
        store.append(ib, msg(n))
    store.store_flags(ib, [2, 3, 5], "add", frozenset({"\\Deleted"}))
    mark = store.get_mailbox_by_id(ib)
    assert mark is not None
    assert store.expunge(ib, [3, 4, 5]) == [3, 5]  # 4 is not \Deleted
    assert store.uids(ib) == [1, 2, 4]
    assert store.expunge(ib) == [2]
    assert store.expunge(ib) == []
    ch = store.changes_since(ib, mark.highestmodseq)
    assert ch.expunged == (2, 3, 5) and ch.changed == ()
    assert ch.highestmodseq > mark.highestmodseq
    assert store.get_messages(ib, [2, 3]) == []
    with pytest.raises(NotFound):
        store.get_raw(ib, 3)


def test_expunge_frees_unreferenced_bodies(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    store.append(ib, msg(1, frozenset({"\\Deleted"})))
    store.append(ib, msg(1, frozenset({"\\Deleted"})))  # same bytes: one body
    store.append(ib, msg(2, frozenset({"\\Deleted"})))
    assert _body_rows(store) == 2
    store.expunge(ib, [1])
    assert _body_rows(store) == 2  # uid 2 still holds it
    store.expunge(ib)
    assert _body_rows(store) == 0


def test_changes_since(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    for n in range(1, 5):
        store.append(ib, msg(n))
    mark = store.changes_since(ib, 0)
    assert [m.uid for m in mark.changed] == [1, 2, 3, 4] and mark.uidnext == 5
    store.store_flags(ib, [4], "add", frozenset({"\\Deleted"}))
    store.store_flags(ib, [1], "add", frozenset({"\\Seen"}))
    store.append(ib, msg(5))
    store.expunge(ib)
    ch = store.changes_since(ib, mark.highestmodseq)
    assert [m.uid for m in ch.changed] == [1, 5]  # ascending by UID
    assert ch.expunged == (4,) and ch.expunged_complete
    assert ch.uidnext == 6
    assert store.changes_since(ib, ch.highestmodseq).changed == ()
    with pytest.raises(NotFound):
        store.changes_since(999, 0)


def test_copy_keeps_flags_and_date_and_gives_new_uids(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    dst = store.create_mailbox(u.id, "dst")
    store.append(dst.id, msg(100))
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    for n in range(1, 4):
        store.append(ib, msg(n, frozenset({"\\Seen", f"k{n}"}), when))
    pairs = store.copy(ib, [3, 1, 42], dst.id)
    assert pairs == [(1, 2), (3, 3)]
    metas = store.get_messages(dst.id, [2, 3])
    assert [m.flags for m in metas] == [{"\\Seen", "k1"}, {"\\Seen", "k3"}]
    assert all(m.internaldate == when for m in metas)
    assert store.get_raw(dst.id, 3) == msg(3).raw
    assert store.uids(ib) == [1, 2, 3]
    assert _body_rows(store) == 4
    assert store.copy(ib, [42], dst.id) == []
    with pytest.raises(NotFound):
        store.copy(ib, [1], 999)


def test_move_expunges_sources_in_one_step(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    dst = store.create_mailbox(u.id, "dst")
    for n in range(1, 4):
        store.append(ib, msg(n))
    mark = store.changes_since(ib, 0).highestmodseq
    assert store.copy(ib, [1, 3], dst.id, move=True) == [(1, 1), (3, 2)]
    assert store.uids(ib) == [2]
    assert store.uids(dst.id) == [1, 2]
    assert store.changes_since(ib, mark).expunged == (1, 3)
    assert store.get_raw(dst.id, 2) == msg(3).raw


def test_counts(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    store.append(ib, msg(1, frozenset({"\\Seen"})))
    store.append(ib, msg(2, frozenset({"\\Deleted"})))
    store.append(ib, msg(3, frozenset({"\\Seen", "\\Deleted"})))
    c = store.counts(ib)
    assert (c.messages, c.recent, c.unseen, c.deleted) == (3, 3, 1, 2)
    assert c.size == sum(len(msg(n).raw) for n in (1, 2, 3))
    empty = store.counts(store.create_mailbox(u.id, "e").id)
    assert (empty.messages, empty.recent, empty.unseen, empty.size, empty.deleted) == (0,) * 5
    with pytest.raises(NotFound):
        store.counts(999)


def test_counts_many_agrees_with_counts(store: Store) -> None:
    """LIST-STATUS reads every folder's counts in one query: the same numbers as
    one ``counts`` per folder, empty folders included, missing ids left out."""
    u = user(store)
    ids = [inbox(store, u)] + [store.create_mailbox(u.id, f"f{i}").id for i in range(5)]
    flags = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Deleted", "x"})]
    for n in range(12):
        if n % 5 != 4:  # f3 stays empty
            store.append(ids[n % 5], msg(n, flags[n % 3]))
    store.claim_recent(ids[1])
    store.append(ids[1], msg(99))
    many = store.counts_many([*ids, 999])
    assert many == {mid: store.counts(mid) for mid in ids}
    assert many[ids[4]].messages == 0 and many[ids[1]].recent == 1
    assert store.counts_many([]) == {}


def test_claim_recent(store: Store) -> None:
    u = user(store)
    ib = inbox(store, u)
    store.append(ib, msg(1))
    store.append(ib, msg(2))
    assert store.claim_recent(ib) == 1  # uids >= 1 are recent for this session
    assert store.claim_recent(ib) == 3  # none left for the next one
    assert store.counts(ib).recent == 0
    store.append(ib, msg(3))
    assert store.counts(ib).recent == 1
    assert store.claim_recent(ib) == 3
    assert store.counts(ib).recent == 0
    with pytest.raises(NotFound):
        store.claim_recent(999)


# -- restarts and several processes ---------------------------------------------


def test_reopen_keeps_everything(open_store: OpenStore) -> None:
    first = open_store()
    u = user(first)
    ib = inbox(first, u)
    first.append(ib, msg(1, frozenset({"\\Flagged"})))
    first.append(ib, msg(2, frozenset({"\\Deleted"})))
    first.expunge(ib)
    before = first.get_mailbox_by_id(ib)
    first.close()
    second = open_store()
    after = second.get_mailbox_by_id(ib)
    assert after == before
    assert [(m.uid, m.flags) for m in second.list_messages(ib)] == [(1, frozenset({"\\Flagged"}))]
    assert second.append(ib, msg(3)).uid == 3  # UIDNEXT never goes back
    recreated = second.create_mailbox(u.id, "fresh")
    assert before is not None and recreated.uidvalidity > before.uidvalidity


def test_two_store_objects_allocate_distinct_uids(open_store: OpenStore) -> None:
    one, two = open_store(), open_store()
    u = user(one)
    ib = inbox(one, u)
    uids = []
    for n in range(10):
        uids.append((one if n % 2 else two).append(ib, msg(n)).uid)
    assert uids == list(range(1, 11))
    assert two.uids(ib) == uids
    assert one.changes_since(ib, 0).highestmodseq == two.changes_since(ib, 0).highestmodseq


def _body_rows(store: Store) -> int:
    """Count stored bodies (backend-specific peek; dedup is part of the contract)."""
    stored_texts = getattr(store, "stored_texts", None)
    if stored_texts is not None:  # PostgreSQL: cache rows and texts, one per text
        bodies, texts = stored_texts()
        assert bodies == texts
        return int(bodies)
    conn = getattr(store, "_conn")  # noqa: B009 - white-box check of storage
    return int(conn.execute("SELECT count(*) FROM bodies").fetchone()[0])


# -- a model check under random operations --------------------------------------

Op = tuple[str, int, list[int]]
ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "seen", "unseen", "delete", "expunge", "copy", "move"]),
        st.integers(0, 50),
        st.lists(st.integers(1, 12), max_size=4),
    ),
    max_size=25,
)


@settings(
    max_examples=40,
    deadline=None,
    # Safe: each example makes its own user and mailboxes in the shared store.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=ops)
def test_random_operations_match_a_model(store: Store, script: list[Op]) -> None:
    u = store.create_user(f"model-{uuid.uuid4().hex}@x", "h")
    src, dst = inbox(store, u), store.create_mailbox(u.id, "dst").id
    model: dict[int, dict[int, frozenset[str]]] = {src: {}, dst: {}}
    uidnext = {src: 1, dst: 1}
    last = store.changes_since(src, 0).highestmodseq
    for name, n, uids in script:
        before = {uid: flags for uid, flags in model[src].items()}
        _apply(store, src, dst, name, n, uids, model, uidnext)
        metas = store.list_messages(src)
        assert {m.uid: m.flags for m in metas} == model[src]
        assert {m.uid: m.flags for m in store.list_messages(dst)} == model[dst]
        ch = store.changes_since(src, last)
        changed = {uid for uid, flags in model[src].items() if before.get(uid) != flags}
        assert {m.uid for m in ch.changed} == changed
        assert set(ch.expunged) >= set(before) - set(model[src])
        assert ch.uidnext == uidnext[src]
        assert (ch.highestmodseq > last) == bool(changed or set(before) - set(model[src]))
        assert all(m.modseq <= ch.highestmodseq for m in metas)
        last = ch.highestmodseq


def _apply(
    store: Store,
    src: int,
    dst: int,
    name: str,
    n: int,
    uids: list[int],
    model: dict[int, dict[int, frozenset[str]]],
    uidnext: dict[int, int],
) -> None:
    here = model[src]
    if name == "append":
        assert store.append(src, msg(n)).uid == uidnext[src]
        here[uidnext[src]] = frozenset()
        uidnext[src] += 1
    elif name in ("seen", "unseen", "delete"):
        flag = "\\Deleted" if name == "delete" else "\\Seen"
        mode: FlagMode = "remove" if name == "unseen" else "add"
        store.store_flags(src, uids, mode, frozenset({flag}))
        for uid in set(uids) & set(here):
            here[uid] = here[uid] - {flag} if mode == "remove" else here[uid] | {flag}
    elif name == "expunge":
        gone = sorted(uid for uid, flags in here.items() if "\\Deleted" in flags)
        assert store.expunge(src) == gone
        for uid in gone:
            del here[uid]
    else:
        present = sorted(set(uids) & set(here))
        pairs = store.copy(src, uids, dst, move=name == "move")
        assert pairs == [(uid, uidnext[dst] + i) for i, uid in enumerate(present)]
        for old, new in pairs:
            model[dst][new] = here[old]
            if name == "move":
                del here[old]
        uidnext[dst] += len(pairs)


def test_highest_modseqs_of_many_mailboxes_in_one_call(store: Store) -> None:
    alice = store.create_user("alice@example.org", "{PLAIN}x")
    inbox = store.get_mailbox(alice.id, "INBOX")
    other = store.create_mailbox(alice.id, "Other")
    assert inbox is not None
    store.append(inbox.id, msg(1))
    got = store.highest_modseqs([inbox.id, other.id, 99999])
    assert got == {
        inbox.id: store.get_mailbox_by_id(inbox.id).highestmodseq,  # type: ignore[union-attr]
        other.id: other.highestmodseq,
    }
    assert got[inbox.id] > inbox.highestmodseq
    assert store.highest_modseqs([]) == {}


def test_changes_to_a_deleted_mailbox_change_nothing(store: Store) -> None:
    """A session may still send STORE or EXPUNGE for a mailbox another session
    deleted: nothing changes and nothing fails (the session reports the loss)."""
    u = user(store)
    box = store.create_mailbox(u.id, "gone")
    store.append(box.id, msg(1, frozenset({"\\Deleted"})))
    store.delete_mailbox(u.id, "gone")
    assert store.expunge(box.id) == []
    assert store.expunge(box.id, [1]) == []
    result = store.store_flags(box.id, [1], "add", frozenset({"\\Seen"}))
    assert result.changed == () and result.modified == ()
