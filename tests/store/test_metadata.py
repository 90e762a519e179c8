"""METADATA entries (RFC 5464) in the store, on every backend: server and mailbox
entries kept apart per user, binary values, all-or-nothing changes under the entry
limit, deleted with their mailbox and kept through RENAME."""

from __future__ import annotations

from pushmail.store.interfaces import Store


def box_id(store: Store, user_id: int, name: str) -> int:
    box = store.get_mailbox(user_id, name)
    assert box is not None
    return box.id


def test_entries_by_user_and_mailbox(store: Store) -> None:
    a = store.create_user("alice@example.org", "h")
    b = store.create_user("bob@example.org", "h")
    inbox = box_id(store, a.id, "INBOX")
    assert store.get_metadata(a.id, None) == {}
    assert store.set_metadata(a.id, None, [("/private/comment", b"\x00\xff\r\n")], 10)
    assert store.set_metadata(a.id, inbox, [("/private/comment", b"box"), ("/shared/x", b"")], 10)
    assert store.get_metadata(a.id, None) == {"/private/comment": b"\x00\xff\r\n"}
    assert store.get_metadata(a.id, inbox) == {"/private/comment": b"box", "/shared/x": b""}
    assert store.get_metadata(b.id, None) == {}
    # replace, delete, and delete what does not exist
    assert store.set_metadata(
        a.id, inbox, [("/private/comment", b"new"), ("/shared/x", None), ("/shared/y", None)], 10
    )
    assert store.get_metadata(a.id, inbox) == {"/private/comment": b"new"}


def test_entry_limit_is_all_or_nothing(store: Store) -> None:
    a = store.create_user("alice@example.org", "h")
    inbox = box_id(store, a.id, "INBOX")
    assert store.set_metadata(a.id, None, [("/private/a", b"1"), ("/private/b", b"2")], 3)
    # the limit counts every mailbox of the user: 2 + 2 > 3
    assert not store.set_metadata(a.id, inbox, [("/private/c", b"3"), ("/private/d", b"4")], 3)
    assert store.get_metadata(a.id, inbox) == {}
    # replacing is not adding; deleting one makes room for one in the same command
    assert store.set_metadata(a.id, None, [("/private/a", b"x"), ("/private/b", None)], 2)
    assert store.set_metadata(a.id, inbox, [("/private/c", b"3")], 2)
    assert not store.set_metadata(a.id, inbox, [("/private/d", b"4")], 2)
    assert store.get_metadata(a.id, None) == {"/private/a": b"x"}


def test_rename_keeps_and_delete_drops(store: Store) -> None:
    a = store.create_user("alice@example.org", "h")
    store.create_mailbox(a.id, "Work")
    work = box_id(store, a.id, "Work")
    store.set_metadata(a.id, work, [("/shared/comment", b"w")], 10)
    store.rename_mailbox(a.id, "Work", "Job")
    assert store.get_metadata(a.id, box_id(store, a.id, "Job")) == {"/shared/comment": b"w"}
    store.delete_mailbox(a.id, "Job")
    store.create_mailbox(a.id, "Job")
    assert store.get_metadata(a.id, box_id(store, a.id, "Job")) == {}
    assert store.get_metadata(a.id, work) == {}
    # the deleted mailbox's entry no longer counts against the limit
    assert store.set_metadata(a.id, None, [("/private/z", b"z")], 1)
