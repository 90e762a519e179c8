"""UIDONLY (RFC 9586) in a session: message numbers refused with UIDREQUIRED,
UIDFETCH responses instead of FETCH, VANISHED instead of EXPUNGE (without QRESYNC)."""

from __future__ import annotations

import re

from test_session_harness import Client, append, raw_message, status_line, store, untagged

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import cmd_notify
from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]


def pair(store: SqliteStore, n: int = 4) -> tuple[Client, Client]:
    """``a`` has UIDONLY on, ``b`` is a plain session; both have INBOX selected."""
    a, b = Client(store), Client(store)
    a.login()
    b.login()
    for i in range(n):
        append(b, "INBOX", raw_message(f"m{i}"))
    # IMAP4rev2 too: no \Recent to spell out in every FLAGS below.
    assert untagged(a.ok("a ENABLE UIDONLY IMAP4rev2")) == [b"ENABLED UIDONLY IMAP4rev2"]
    a.ok("a SELECT INBOX")
    b.ok("b SELECT INBOX")
    return a, b


def test_advertised_and_enabled_only_before_select(store: SqliteStore) -> None:
    a, _ = pair(store)
    assert b" UIDONLY" in a.ok("a CAPABILITY")
    # ENABLE is an authenticated-state command: refused while a mailbox is selected.
    c = Client(store)
    c.login()
    c.ok("c SELECT INBOX")
    assert status_line(c.send("c ENABLE UIDONLY"), "c").startswith(b"c BAD")
    assert b"UIDFETCH" not in c.ok("c UID FETCH 1 FLAGS")  # not enabled: plain FETCH


_SEQ_COMMANDS = (
    "FETCH 1 FLAGS",
    "FETCH * FLAGS",
    "STORE 1 +FLAGS (\\Seen)",
    "COPY 1 INBOX",
    "MOVE 1 INBOX",
    "SEARCH ALL",
    "SORT (DATE) UTF-8 ALL",
    "THREAD REFERENCES UTF-8 ALL",
    "UID SEARCH 1:2",
    "UID SEARCH OR UID 1 NOT 2:*",
    "UID SORT (DATE) UTF-8 1:*",
)


def test_message_numbers_get_bad_uidrequired(store: SqliteStore) -> None:
    a, _ = pair(store)
    for cmd in _SEQ_COMMANDS:
        line = status_line(a.send("t " + cmd), "t")
        assert line.startswith(b"t BAD [UIDREQUIRED]"), (cmd, line)
    # UID sets, ``*`` in them (the largest UID) and CHANGEDSINCE are fine.
    assert status_line(a.send("t UID FETCH 1:* FLAGS (CHANGEDSINCE 1)"), "t").startswith(b"t OK")


def test_uid_commands_answer_with_uidfetch(store: SqliteStore) -> None:
    a, _ = pair(store)
    out = untagged(a.ok("a UID FETCH 2:* (FLAGS)"))
    assert out == [b"2 UIDFETCH (FLAGS ())", b"3 UIDFETCH (FLAGS ())", b"4 UIDFETCH (FLAGS ())"]
    # UID only when asked for: no longer added by UID FETCH.
    assert untagged(a.ok("a UID FETCH 4 (UID FLAGS)")) == [b"4 UIDFETCH (UID 4 FLAGS ())"]
    out = untagged(a.ok("a UID STORE 3 +FLAGS (\\Seen)"))
    assert out == [b"3 UIDFETCH (FLAGS (\\Seen))"]
    assert untagged(a.ok("a UID SEARCH SEEN")) == [b'ESEARCH (TAG "a") UID ALL 3']  # rev2
    assert untagged(a.ok("a UID SEARCH RETURN (ALL) UID 2:*")) == [
        b'ESEARCH (TAG "a") UID ALL 2:4'
    ]


def test_other_sessions_changes_come_as_uidfetch_vanished_exists(store: SqliteStore) -> None:
    a, b = pair(store)
    b.ok("b STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert untagged(a.ok("a NOOP")) == [b"2 UIDFETCH (FLAGS (\\Flagged))"]
    b.ok("b STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    b.ok("b EXPUNGE")
    append(b, "INBOX", raw_message("new"))
    # VANISHED although QRESYNC is off; the EXISTS count is still kept and sent.
    assert untagged(a.ok("a NOOP")) == [b"VANISHED 1,3", b"3 EXISTS"]
    a.ok("a UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    assert untagged(a.ok("a EXPUNGE")) == [b"VANISHED 4"]


def test_no_sequence_map_kept_between_commands(store: SqliteStore) -> None:
    a, b = pair(store)
    view = a.session.view
    assert view is not None and b.session.view is not None
    assert view.shed_count == 4 and len(view.uids) == 0  # only the count is kept
    assert b.session.view.shed_count is None and len(b.session.view.uids) == 4
    b.ok("b STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("b EXPUNGE")
    append(b, "INBOX", raw_message("new"))
    # A refused message-number command holds the expunge back (the map is kept
    # meanwhile) and announces the new message, from a map read again from the
    # store; the next command reports the expunge.
    out = a.send("a FETCH 1 FLAGS")
    assert b"VANISHED" not in out and b"[UIDREQUIRED]" in out and b"* 5 EXISTS\r\n" in out
    assert view.shed_count is None and view.pending_expunge == {2}
    assert untagged(a.ok("a NOOP")) == [b"VANISHED 2"]
    assert view.shed_count == 4
    out = untagged(a.ok("a UID FETCH 1:* FLAGS"))
    assert [line.split()[0] for line in out] == [b"1", b"3", b"4", b"5"]


def test_move_vanishes_and_qresync_sequence_match_is_refused(store: SqliteStore) -> None:
    a, _ = pair(store)
    out = untagged(a.ok("a UID MOVE 2 Trash"))
    assert out[0].startswith(b"OK [COPYUID ") and out[1:] == [b"VANISHED 2"]
    a.ok("a UNSELECT")  # ENABLE: authenticated state only
    a.ok("a ENABLE QRESYNC")
    m = re.search(rb"UIDVALIDITY (\d+)", a.ok("a STATUS INBOX (UIDVALIDITY)"))
    assert m is not None
    uv = m.group(1).decode()
    line = status_line(a.send(f"q SELECT INBOX (QRESYNC ({uv} 1 1:4 (1:2 1:2)))"), "q")
    assert line.startswith(b"q BAD [UIDREQUIRED]"), line
    out = a.ok(f"q SELECT INBOX (QRESYNC ({uv} 1 1:4))")
    assert b"* VANISHED (EARLIER) 2\r\n" in out and b" FETCH " not in out


def test_notify_message_new_items_come_as_uidfetch(store: SqliteStore) -> None:
    a, b = pair(store)
    a.ok("n NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
    view = a.session.view
    assert view is not None and view.shed_count == 4
    append(b, "INBOX", raw_message("new"))
    b.ok("b STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("b EXPUNGE")
    box = store.get_mailbox(b.session.require_user().id, "INBOX")
    assert box is not None
    ev = MailboxChanged(box.user_id, box.id, box.highestmodseq, "new")
    out = cmd_notify.event_lines(a.session, [ev], store)
    lines = out.split(b"\r\n")[:-1]
    assert sorted(lines) == [b"* 4 EXISTS", b"* 5 UIDFETCH (UID 5 FLAGS ())", b"* VANISHED 1"]
    assert view.shed_count == 4  # let go again
