"""The pushes of the folder kept selected under NOTIFY (sans-IO): when pushed FETCH
data may be announced as it is, and when the watcher must fetch from its cursor."""

from __future__ import annotations

from pushmail.client.pushed import SelectedPushes
from pushmail.client.response import ResponseReader, Untagged

HEADER = b"From: bob@example.net\r\nSubject: pushed\r\n\r\n"


def _responses(data: bytes) -> list[Untagged]:
    reader = ResponseReader()
    reader.feed(data)
    out = list(reader)
    assert all(isinstance(r, Untagged) for r in out)
    return out  # type: ignore[return-value]


def _push(seq: int, uid: int) -> bytes:
    return (
        b"* %d FETCH (UID %d RFC822.SIZE 99 BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}\r\n"
        % (seq, uid, len(HEADER))
        + HEADER
        + b")\r\n"
    )


def _feed(p: SelectedPushes, data: bytes, exists: int, cursor: int) -> int:
    """Feed like the watcher: each response with the count before it."""
    for r in _responses(data):
        p.feed(r, exists, cursor)
        if r.keyword == "EXISTS" and r.number is not None:
            exists = r.number
        elif r.keyword == "EXPUNGE":
            exists -= 1
    return exists


def _pushes(fetch_pushed: bool = True) -> SelectedPushes:
    return SelectedPushes("acct", "INBOX", 77, fetch_pushed)


def test_exists_then_its_fetch_is_announced_by_uid() -> None:
    p = _pushes()
    _feed(p, b"* 5 EXISTS\r\n* 0 RECENT\r\n" + _push(4, 11) + _push(5, 12), 3, 10)
    infos = p.take()
    assert [(i.uid, i.subject, i.from_, i.size) for i in infos] == [
        (11, "pushed", "bob@example.net", 99),
        (12, "pushed", "bob@example.net", 99),
    ]
    assert all(i.uidvalidity == 77 and i.folder == "INBOX" for i in infos)
    assert not p.pending and not p.needs_fetch and p.take() == []


def test_announced_messages_wait_for_every_push() -> None:
    p = _pushes()
    exists = _feed(p, b"* 5 EXISTS\r\n" + _push(4, 11), 3, 10)
    assert p.pending and p.take() == []  # message 5 not pushed yet: cursor must wait
    _feed(p, _push(5, 12), exists, 10)
    assert [i.uid for i in p.take()] == [11, 12]


def test_a_missing_push_means_fetch() -> None:
    p = _pushes()
    _feed(p, b"* 4 EXISTS\r\n", 3, 10)
    assert p.pending
    p.give_up()
    assert p.needs_fetch and not p.pending and p.take() == []
    p.reset()
    assert not p.needs_fetch


def test_expunge_while_a_push_is_awaited_means_fetch() -> None:
    p = _pushes()
    _feed(p, b"* 4 EXISTS\r\n* 2 EXPUNGE\r\n", 3, 10)
    assert p.needs_fetch and p.take() == []


def test_expunge_with_nothing_awaited_changes_nothing() -> None:
    p = _pushes()
    _feed(p, b"* 2 EXPUNGE\r\n* VANISHED 4\r\n", 3, 10)
    assert not p.needs_fetch and not p.pending


def test_without_fetch_items_every_new_exists_means_fetch() -> None:
    p = _pushes(fetch_pushed=False)
    _feed(p, b"* 3 EXISTS\r\n", 3, 10)  # same count (a server repeating itself)
    assert not p.needs_fetch
    _feed(p, b"* 4 EXISTS\r\n", 3, 10)
    assert p.needs_fetch


def test_flag_changes_and_old_uids_are_not_news() -> None:
    p = _pushes()
    _feed(p, b"* 2 FETCH (UID 12 FLAGS (\\Seen))\r\n" + _push(1, 9), 3, 10)
    assert not p.pending and not p.needs_fetch and p.take() == []
