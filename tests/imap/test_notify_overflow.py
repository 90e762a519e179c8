"""NOTIFICATIONOVERFLOW (RFC 5465 §5.8) in the session layer: the pending-hint queue
keeps one hint per mailbox and says when it is over its limit, and ``overflow``
turns NOTIFY off exactly as NOTIFY NONE would, until the client asks again."""

from __future__ import annotations

from test_session_harness import Client, append, raw_message, store

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import cmd_notify
from pushmail.imap.notify import PendingHints
from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]


def hint(mailbox_id: int, kind: str = "new") -> MailboxChanged:
    return MailboxChanged(1, mailbox_id, 0, kind)  # type: ignore[arg-type]


def test_pending_hints_keep_one_per_mailbox_and_count_against_the_limit() -> None:
    q = PendingHints(limit=2)
    assert q.add(hint(5)) and q.add(hint(5, "flags")) and q.add(hint(5))
    assert len(q) == 1  # a flood into one folder takes one place
    assert q.add(hint(6))
    assert not q.add(hint(7))  # a third different change: over the limit
    assert [e.mailbox_id for e in q.take()] == [5, 6, 7]
    assert len(q) == 0 and q.add(hint(5))  # taking empties the queue and its keys


def test_mailbox_list_changes_are_distinct_hints() -> None:
    q = PendingHints(limit=10)
    q.add(hint(0, "mailboxes"))
    q.add(hint(0, "subscriptions"))
    q.add(hint(0, "mailboxes"))
    assert [e.kind for e in q.take()] == ["mailboxes", "subscriptions"]


def test_overflow_acts_as_notify_none_until_the_next_notify_set(store: SqliteStore) -> None:
    a = Client(store)
    a.login()
    a.ok("c CREATE misc")
    a.ok("s SELECT INBOX")
    a.ok(
        "n NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))"
    )
    assert a.session.notify is not None and a.session.view is not None
    assert a.session.view.fetch_uid  # §5.1: unsolicited FETCH carries UID

    line = cmd_notify.overflow(a.session)
    assert line.startswith(b"* OK [NOTIFICATIONOVERFLOW] ") and line.endswith(b"\r\n")
    assert a.session.notify is None and not a.session.view.fetch_uid

    b = Client(store)
    b.login()
    append(b, "misc", raw_message("one"))
    box = store.get_mailbox(a.session.require_user().id, "misc")
    assert box is not None
    ev = MailboxChanged(box.user_id, box.id, box.highestmodseq, "new")
    assert cmd_notify.event_lines(a.session, [ev], store) == b""  # NOTIFY is off

    a.ok("n2 NOTIFY SET (personal (MessageNew MessageExpunge))")
    out = cmd_notify.event_lines(a.session, [ev], store)
    assert out.startswith(b"* STATUS misc (MESSAGES 1 ")
