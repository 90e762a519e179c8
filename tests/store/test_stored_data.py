"""The data stored with each message for the extensions of issue 18 (PREVIEW, and
what follows), run against every backend like the conformance suite."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pushmail.imap.structure import build_cache
from pushmail.store.interfaces import MessageCache, NewMessage, Store, User

RAW = b"Subject: hi\r\nContent-Type: text/plain\r\n\r\nSee you at  noon.\r\n> old\r\n"


def _inbox(store: Store, u: User) -> int:
    box = store.get_mailbox(u.id, "INBOX")
    assert box is not None
    return box.id


def _preview_rows(store: Store) -> int:
    """Stored previews (white-box: a preview must go with its text)."""
    conn = getattr(store, "_conn", None)
    if conn is not None:  # SQLite
        return int(conn.execute("SELECT count(*) FROM previews").fetchone()[0])
    read = getattr(store, "_read")  # noqa: B009 - PostgreSQL, white-box
    row = read(lambda c: c.execute("SELECT count(*) FROM previews").fetchone())
    return int(row[0])


def test_preview_is_stored_once_per_text_and_read_back(store: Store) -> None:
    u = store.create_user("a@x", "h")
    v = store.create_user("b@x", "h")
    cache = build_cache(RAW)
    assert cache.preview == "See you at noon."
    got = store.deliver([(_inbox(store, u), NewMessage(RAW, cache))] * 2)
    got += store.deliver([(_inbox(store, v), NewMessage(RAW, cache))])
    for a in got:
        assert store.get_cache(a.mailbox_id, a.uid).preview == "See you at noon."
    assert _preview_rows(store) == 1


def test_preview_not_computed_reads_as_none(store: Store) -> None:
    u = store.create_user("a@x", "h")
    bare = MessageCache(b"(NIL)", b"(NIL)", b"(NIL)")
    uid = store.append(_inbox(store, u), NewMessage(RAW, bare)).uid
    assert store.get_cache(_inbox(store, u), uid).preview is None
    assert _preview_rows(store) == 0


def test_preview_follows_copy_and_goes_with_the_last_copy(store: Store) -> None:
    u = store.create_user("a@x", "h")
    ib = _inbox(store, u)
    work = store.create_mailbox(u.id, "Work").id
    uid = store.append(ib, NewMessage(RAW, build_cache(RAW), frozenset({"\\Deleted"}))).uid
    [(_, moved)] = store.copy(ib, [uid], work, move=True)
    assert store.get_cache(work, moved).preview == "See you at noon."
    store.store_flags(work, [moved], "add", frozenset({"\\Deleted"}))
    store.expunge(work)
    assert _preview_rows(store) == 0


def test_previews_of_many_messages_in_one_call(store: Store) -> None:
    u = store.create_user("a@x", "h")
    ib = _inbox(store, u)
    bare = MessageCache(b"(NIL)", b"(NIL)", b"(NIL)")
    one = store.append(ib, NewMessage(RAW, build_cache(RAW))).uid
    two = store.append(ib, NewMessage(RAW + b"x", bare)).uid
    assert store.previews(ib, [one, two, 99]) == {one: "See you at noon.", two: None}
    assert store.previews(ib, []) == {}


def test_email_ids_follow_the_text(store: Store) -> None:
    """RFC 8474 EMAILID: kept by COPY and MOVE, the same for identical texts,
    different for different ones; objectid grammar (1*255 ALPHA/DIGIT/"_"/"-")."""
    u = store.create_user("a@x", "h")
    ib = _inbox(store, u)
    work = store.create_mailbox(u.id, "Work").id
    cache = build_cache(RAW)
    one = store.append(ib, NewMessage(RAW, cache)).uid
    two = store.append(ib, NewMessage(RAW + b"other\r\n", cache)).uid
    three = store.append(ib, NewMessage(RAW, cache)).uid
    ids = store.email_ids(ib, [one, two, three, 99])
    assert set(ids) == {one, two, three}
    assert ids[one] == ids[three] != ids[two]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,255}", i) for i in ids.values())
    [(_, copied)] = store.copy(ib, [two], work)
    assert store.email_ids(work, [copied]) == {copied: ids[two]}
    store.store_flags(ib, [one], "add", frozenset({"\\Deleted"}))
    [(_, moved)] = store.copy(ib, [one], work, move=True)
    assert store.email_ids(work, [moved]) == {moved: ids[one]}


def test_save_dates_are_when_the_message_came_into_the_mailbox(store: Store) -> None:
    """RFC 8514: delivery, APPEND, COPY and MOVE set the save date (now, whatever
    the internal date); it is read for many messages in one call."""
    u = store.create_user("a@x", "h")
    ib = _inbox(store, u)
    work = store.create_mailbox(u.id, "Work").id
    old = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    before = datetime.now(UTC).replace(microsecond=0)
    uid = store.append(ib, NewMessage(RAW, build_cache(RAW), frozenset(), old)).uid
    [(_, copied)] = store.copy(ib, [uid], work)
    after = datetime.now(UTC)
    dates = store.save_dates(ib, [uid, 99]) | store.save_dates(work, [copied])
    assert set(dates) == {uid, copied}
    for when in dates.values():
        assert when is not None and before <= when <= after
    assert store.list_messages(ib)[0].internaldate == old
