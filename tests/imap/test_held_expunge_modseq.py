"""RFC 7162 §3.2 (example in §6): while an expunge is held back (no EXPUNGE or
VANISHED during FETCH, STORE or SEARCH by sequence number, RFC 3501 §7.4.1), the
HIGHESTMODSEQ a session reports stays below the expunge's MODSEQ, so that a client
that disconnects then and resynchronises from it still hears of the expunge; once
the expunge is sent, the real value follows. Real sessions on a real store."""

from __future__ import annotations

import re

from test_session_harness import Client, append, raw_message, store, untagged

from pushmail.events.interfaces import ChangeKind, MailboxChanged
from pushmail.imap import cmd_notify
from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]

_HIGHEST = re.compile(rb"OK \[HIGHESTMODSEQ (\d+)\]")


def session(store: SqliteStore, enable: str = "") -> Client:
    c = Client(store)
    c.login()
    if enable:
        c.ok(f"e ENABLE {enable}")
    return c


def filled(store: SqliteStore, n: int, enable: str = "") -> tuple[Client, int, int]:
    """A session with ``n`` messages in INBOX, selected: (client, UIDVALIDITY,
    the HIGHESTMODSEQ its SELECT reported)."""
    c = session(store, enable)
    for i in range(n):
        append(c, "INBOX", raw_message(f"m{i}"))
    out = c.ok("s SELECT INBOX")
    uv = re.search(rb"OK \[UIDVALIDITY (\d+)\]", out)
    hm = _HIGHEST.search(out)
    assert uv is not None and hm is not None, out
    return c, int(uv.group(1)), int(hm.group(1))


def expunge_elsewhere(store: SqliteStore, seq: int) -> int:
    """Another session expunges message ``seq`` of INBOX; the MODSEQ of the expunge."""
    b, _, _ = filled(store, 0)
    b.ok(f"d STORE {seq} +FLAGS.SILENT (\\Deleted)")
    b.ok("x EXPUNGE")
    return mailbox_modseq(store)


def mailbox_modseq(store: SqliteStore) -> int:
    user = store.get_user("alice@example.org")
    assert user is not None
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    return box.highestmodseq


def highests(out: bytes) -> list[int]:
    return [int(m.group(1)) for line in untagged(out) if (m := _HIGHEST.match(line))]


def modseqs(out: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"MODSEQ \((\d+)\)", out)]


def test_held_expunge_keeps_highestmodseq_below_it_until_sent(store: SqliteStore) -> None:
    a, uv, hm = filled(store, 3, "QRESYNC")
    gone = expunge_elsewhere(store, 3)

    out = a.ok("a150 STORE 1 +FLAGS.SILENT (\\Seen)")
    assert b"VANISHED" not in out  # held back: STORE by sequence number
    assert min(modseqs(out)) > gone  # the client saw a MODSEQ above the expunge's...
    assert highests(out) == [hm] and hm < gone  # ...and is told a value below it
    out = a.ok("a151 FETCH 1:3 (MODSEQ)")  # still by number: still held
    assert b"VANISHED" not in out and b"2 FETCH" in out and highests(out) == [hm]

    # A client that lost its connection here resynchronises from hm: it hears of it.
    c = session(store, "QRESYNC")
    out = c.ok(f"q SELECT INBOX (QRESYNC ({uv} {hm}))")
    assert b"* VANISHED (EARLIER) 3\r\n" in out

    out = a.ok("a152 NOOP")
    assert untagged(out)[0] == b"VANISHED 3"
    assert highests(out) == [mailbox_modseq(store)]  # the real value, now safe
    assert highests(a.ok("a153 NOOP")) == []  # said once, not after every command


def test_nothing_held_means_no_extra_highestmodseq(store: SqliteStore) -> None:
    a, _, _ = filled(store, 3, "QRESYNC")
    assert highests(a.ok("a STORE 1 +FLAGS.SILENT (\\Seen)")) == []
    expunge_elsewhere(store, 3)
    out = a.ok("b UID STORE 1 +FLAGS.SILENT (\\Flagged)")  # by UID: the VANISHED may go
    assert b"* VANISHED 3\r\n" in out and highests(out) == []


def test_first_enabling_command_reports_the_held_value(store: SqliteStore) -> None:
    a, _, hm = filled(store, 3)  # CONDSTORE not yet enabled: no MODSEQ, no note
    gone = expunge_elsewhere(store, 2)
    out = a.ok("a STORE 1 +FLAGS (\\Seen)")
    assert b"EXPUNGE" not in out and highests(out) == []
    out = a.ok("b FETCH 1 (MODSEQ)")  # enables CONDSTORE (RFC 7162 §3.1)
    assert b"EXPUNGE" not in out
    assert highests(out) and set(highests(out)) == {hm} and hm < gone
    out = a.ok("c NOOP")
    assert untagged(out)[0] == b"2 EXPUNGE"
    assert highests(out) == [mailbox_modseq(store)]


def test_qresync_expunge_reports_the_real_value_once(store: SqliteStore) -> None:
    a, _, _ = filled(store, 3, "QRESYNC")
    expunge_elsewhere(store, 3)
    a.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")  # holds the VANISHED of message 3
    out = a.ok("b EXPUNGE")
    # Both expunges at once, the real value in the tagged OK only (RFC 7162 §3.2.7).
    modseq = mailbox_modseq(store)
    assert out == b"* VANISHED 1,3\r\nb OK [HIGHESTMODSEQ %d] EXPUNGE completed\r\n" % modseq


def test_notify_selected_delayed_notes_only_with_new_modseqs(store: SqliteStore) -> None:
    a, _, hm = filled(store, 3, "QRESYNC")
    a.ok("n NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))")
    box = store.get_mailbox(a.session.require_user().id, "INBOX")
    assert box is not None

    def hint(kind: ChangeKind) -> bytes:
        ev = MailboxChanged(box.user_id, box.id, mailbox_modseq(store), kind)
        return cmd_notify.event_lines(a.session, [ev], store)

    expunge_elsewhere(store, 3)
    assert hint("expunge") == b""  # delayed, and no MODSEQ went out: nothing to say
    b, _, _ = filled(store, 0)
    b.ok("f STORE 1 +FLAGS.SILENT (\\Flagged)")
    out = hint("flags")
    assert b"VANISHED" not in out and modseqs(out)
    assert highests(out) == [hm]
