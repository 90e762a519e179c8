"""Two sessions on one store: each sees the other's changes, in order, with correct
sequence numbers; expunges wait while a command uses sequence numbers (RFC 3501
§7.4.1); and a user's mailbox names never reach another user's mailboxes."""

from __future__ import annotations

import re

from test_session_harness import Client, append, raw_message, store, untagged

from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]


def pair(store: SqliteStore, n: int = 5) -> tuple[Client, Client]:
    a, b = Client(store), Client(store)
    a.login()
    b.login()
    for i in range(n):
        append(a, "INBOX", raw_message(f"m{i}"))
    a.ok("a SELECT INBOX")
    b.ok("b SELECT INBOX")
    return a, b


def test_appends_flags_and_expunges_reach_the_other_session(store: SqliteStore) -> None:
    a, b = pair(store)
    append(b, "INBOX", raw_message("new"))
    assert untagged(a.ok("a NOOP")) == [b"6 EXISTS", b"5 RECENT"]  # b claimed the new one
    b.ok("b STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert untagged(a.ok("a NOOP")) == [b"2 FETCH (FLAGS (\\Flagged \\Recent))"]
    b.ok("b STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    assert untagged(b.ok("b EXPUNGE")) == [b"2 EXPUNGE", b"3 EXPUNGE"]
    out = a.ok("a NOOP")
    assert untagged(out) == [b"2 EXPUNGE", b"3 EXPUNGE"]  # UID 2 at 2, then UID 4 at 3
    assert re.findall(rb"UID (\d+)", a.ok("a FETCH 1:* UID")) == [b"1", b"3", b"5", b"6"]
    assert untagged(a.ok("a NOOP")) == []  # nothing is reported twice


def test_expunges_wait_for_a_command_without_sequence_numbers(store: SqliteStore) -> None:
    a, b = pair(store)
    b.ok("b STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    b.ok("b EXPUNGE")
    for cmd in ("a FETCH 1:* FLAGS", "a STORE 5 +FLAGS (\\Seen)", "a SEARCH ALL", "a COPY 3 Trash"):
        out = a.ok(cmd)
        assert b" EXPUNGE\r\n" not in out, cmd  # (EXPUNGEISSUED may say one happened)
    # Numbers still mean what the client believes: 5 is UID 5, and 3 is UID 3.
    assert b"* 5 FETCH (UID 5 FLAGS (\\Recent \\Seen))" in a.ok("a FETCH 5 (UID FLAGS)")
    assert untagged(a.ok("a SEARCH ALL")) == [b"SEARCH 3 4 5"]  # 1 and 2 are gone
    out = a.ok("a UID FETCH 5 FLAGS")  # UID commands may report them
    assert untagged(out)[-2:] == [b"1 EXPUNGE", b"1 EXPUNGE"]
    assert untagged(a.ok("a FETCH 3 UID")) == [b"3 FETCH (UID 5)"]


def test_idle_hears_changes_as_they_happen(store: SqliteStore) -> None:
    a, b = pair(store, 2)
    assert a.send("a IDLE") == b"+ idling\r\n"
    assert a.wake() == b""  # a hint with nothing new says nothing
    append(b, "INBOX", raw_message("pushed"))
    assert a.wake() == b"* 3 EXISTS\r\n* 2 RECENT\r\n"
    b.ok("b STORE 1 +FLAGS.SILENT (\\Seen)")
    assert a.wake() == b"* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n"
    b.ok("b STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("b EXPUNGE")
    assert a.wake() == b"* 2 EXPUNGE\r\n"
    assert a.done() == b"a OK IDLE terminated\r\n"
    assert re.findall(rb"UID (\d+)", a.ok("a FETCH 1:* UID")) == [b"1", b"3"]


def test_a_lost_hint_only_delays(store: SqliteStore) -> None:
    a, b = pair(store, 1)
    for i in range(3):  # three changes, no wake-up in between
        append(b, "INBOX", raw_message(f"x{i}"))
    b.ok("b STORE 1 +FLAGS.SILENT (\\Answered)")
    out = a.ok("a NOOP")
    assert untagged(out) == [b"4 EXISTS", b"1 RECENT", b"1 FETCH (FLAGS (\\Answered \\Recent))"]


def test_a_mailbox_name_cannot_reach_another_user(store: SqliteStore) -> None:
    alice, bob = Client(store), Client(store)
    alice.login()
    bob.login("bob@example.org", "bob-pw")
    bob.ok('b CREATE "Private"')
    append(bob, "Private", raw_message("secret"))
    names = [
        "Private",
        "bob@example.org/Private",
        "../bob@example.org/Private",
        "~bob/Private",
        "#shared/Private",
        "/Private",
        "Private/..",
    ]
    for name in names:
        for cmd in ("SELECT", "EXAMINE", "STATUS", "DELETE"):
            args = f'"{name}" (MESSAGES)' if cmd == "STATUS" else f'"{name}"'
            out = alice.send(f"a {cmd} {args}")
            assert re.match(rb"a (NO|BAD) ", out), (cmd, name, out)
            assert b"secret" not in out
    for ref, pattern in (
        ("", "*"),
        ("bob@example.org/", "*"),
        ("~bob", "*"),
        ("/", "*"),
        ("", "../*"),
    ):
        out = alice.ok(f'a LIST "{ref}" "{pattern}"')
        assert b"Private" not in out, (ref, pattern)
    alice.ok('a CREATE "Private"')  # alice's own, a different mailbox
    alice.ok('a SELECT "Private"')
    assert b"* 0 EXISTS" in alice.ok('a SELECT "Private"')
    alice.ok('a RENAME "Private" "Mine"')
    assert b'"/" Private' in bob.ok('b LIST "" *')  # bob's is untouched
    bob.ok('b SELECT "Private"')
    assert b"secret" in bob.ok("b FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
