"""Every RFC 3501 command family, run by a session against a real SQLite store."""

from __future__ import annotations

import re

from test_session_harness import Client, append, raw_message, status_line, store, untagged

from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]  # the fixture, re-exported for pytest

MULTIPART = (
    b"From: Sender <sender@example.com>\r\nTo: alice@example.org\r\nSubject: parts\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 text\r\n"
    b"--XX\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--XX--\r\n"
)


def selected(store: SqliteStore, mailbox: str = "INBOX") -> Client:
    c = Client(store)
    c.login()
    append(c, mailbox, raw_message("one"), "\\Seen")
    dated = raw_message("two")
    c.ok(
        b'AP APPEND INBOX (\\Flagged) "17-Jul-1996 02:44:25 -0700" {%d}\r\n' % len(dated)
        + dated
        + b"\r\n"
    )
    append(c, mailbox, MULTIPART)
    c.ok(f"S SELECT {mailbox}")
    return c


def test_list_and_lsub_with_wildcards(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    c.ok('a CREATE "Archive/2024/Q1"')
    names = lambda out: [line.rsplit(b" ", 1)[1] for line in untagged(out)]  # noqa: E731
    assert names(c.ok('a LIST "" %')) == [
        b"Archive",
        b"Drafts",
        b"INBOX",
        b"Junk",
        b"Sent",
        b"Trash",
    ]
    assert names(c.ok('a LIST "" Archive/*')) == [b"Archive/2024", b"Archive/2024/Q1"]
    assert names(c.ok('a LIST "Archive/" %')) == [b"Archive/2024"]
    assert untagged(c.ok('a LIST "" ""')) == [b'LIST (\\Noselect) "/" ""']
    assert b"(\\HasChildren)" in c.ok('a LIST "" Archive')
    c.ok("a SUBSCRIBE Archive/2024/Q1")
    c.ok("a UNSUBSCRIBE Junk")
    lsub = names(c.ok('a LSUB "" *'))
    assert b"Archive/2024/Q1" in lsub and b"Junk" not in lsub
    # Archive/2024 is not subscribed, but a name below it is: \Noselect (§6.3.9).
    assert untagged(c.ok('a LSUB "" Archive/%')) == [b'LSUB (\\Noselect) "/" Archive/2024']


def test_create_delete_rename_and_modified_utf7(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    c.ok('a CREATE "Caf&AOk-/Sub"')
    assert b'"/" Caf&AOk-/Sub' in c.ok('a LIST "" Caf&AOk-/*')
    assert store.get_mailbox(1, "Café/Sub") is not None  # stored as Unicode
    assert b"a NO [CANNOT]" in c.send('a CREATE "bad&name"')  # not valid modified UTF-7
    assert b"a NO" in c.send('a CREATE "Caf&AOk-"')  # exists (created as a parent)
    c.ok('a RENAME "Caf&AOk-" "Z&AOk-ro"')
    assert [ln.rsplit(b" ", 1)[1] for ln in untagged(c.ok('a LIST "" Z*'))] == [
        b"Z&AOk-ro",
        b"Z&AOk-ro/Sub",
    ]
    assert b"a NO [CANNOT]" in c.send("a DELETE INBOX")
    c.ok('a DELETE "Z&AOk-ro/Sub"')
    assert b"NONEXISTENT" in c.send('a DELETE "Z&AOk-ro/Sub"')
    for bad in ('"/abs"', '"x//y"', '""'):
        assert b"a NO [CANNOT]" in c.send(f"a CREATE {bad}")


def test_status_and_append_with_flags_and_date(store: SqliteStore) -> None:
    c = selected(store)
    c.ok("x CLOSE")
    out = c.ok("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    box = store.get_mailbox(1, "INBOX")
    assert box is not None
    assert untagged(out) == [
        b"STATUS INBOX (MESSAGES 3 RECENT 0 UIDNEXT 4 UIDVALIDITY %d UNSEEN 2)" % box.uidvalidity
    ]
    out = c.ok("a EXAMINE INBOX")
    assert b"OK [READ-ONLY]" in out and b"[PERMANENTFLAGS ()]" in out
    out = c.ok("a FETCH 2 (FLAGS INTERNALDATE)")
    assert untagged(out) == [
        b'2 FETCH (FLAGS (\\Flagged) INTERNALDATE "17-Jul-1996 02:44:25 -0700")'
    ]
    assert b"NO [TRYCREATE]" in c.send(b"a APPEND Nope {3}\r\nabc\r\n")
    assert b"BAD" in c.send(b'a APPEND INBOX "31-Feb-1996 02:44:25 -0700" {3}\r\nabc\r\n')


def test_select_reports_and_recent_belongs_to_one_session(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    for n in range(3):
        append(c, "INBOX", raw_message(f"m{n}"), "\\Seen" if n == 0 else "")
    out = c.ok("a SELECT INBOX")
    assert untagged(out)[2:5] == [b"3 EXISTS", b"3 RECENT", b"OK [UNSEEN 2] first unseen"]
    assert b"[UIDNEXT 4]" in out and b"OK [READ-WRITE]" in out
    other = Client(store)
    other.login()
    assert b"* 0 RECENT" in other.ok("b SELECT INBOX")  # \Recent was claimed
    assert b"\\Recent" in c.ok("a FETCH 1 FLAGS")
    assert b"\\Recent" not in other.ok("b FETCH 1 FLAGS")
    assert untagged(c.ok("a SEARCH RECENT")) == [b"SEARCH 1 2 3"]
    assert untagged(other.ok("b SEARCH RECENT")) == [b"SEARCH"]
    c.send("a STORE 2 +FLAGS (\\Recent)")  # a client cannot set it: ignored or refused
    assert all("\\Recent" not in m.flags for m in store.list_messages(1))


def test_fetch_macros_and_items(store: SqliteStore) -> None:
    c = selected(store)
    out = c.ok("a FETCH 2 FAST")
    assert untagged(out) == [
        b'2 FETCH (FLAGS (\\Flagged \\Recent) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b"RFC822.SIZE %d)" % len(raw_message("two"))
    ]
    out = c.ok("a FETCH 1 ALL")
    assert b'ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "one" (("Sender" NIL "sender"' in out
    out = c.ok("a FETCH 3 FULL")
    assert b'BODY (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0)' in out
    out = c.ok("a FETCH 3 BODYSTRUCTURE")
    assert b'"mixed" ("boundary" "XX") NIL NIL NIL))' in out
    out = c.ok("a FETCH 1 (UID RFC822.SIZE)")
    assert untagged(out) == [b"1 FETCH (UID 1 RFC822.SIZE %d)" % len(raw_message("one"))]
    assert b"\\Seen" not in c.ok("a FETCH 3 (FLAGS BODY.PEEK[TEXT] RFC822.HEADER)")


def test_body_sections_and_partials(store: SqliteStore) -> None:
    c = selected(store)
    out = c.ok("a FETCH 3 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[TEXT]<2.4>)")
    assert b"BODY[1] {10}\r\nCaf\xc3\xa9 text" in out
    assert b"BODY[2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n" in out
    assert b"BODY[TEXT]<2> {4}\r\nXX\r\n" in out
    out = c.ok("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert b"{51}\r\nFrom: Sender <sender@example.com>\r\nSubject: one\r\n\r\n)" in out
    out = c.ok("a FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM TO MESSAGE-ID)])")
    assert b"{40}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n)" in out
    out = c.ok("a FETCH 1 (BODY.PEEK[]<0.4> BODY.PEEK[]<1000.10>)")
    assert b"BODY[]<0> {4}\r\nFrom" in out and b"BODY[]<1000> {0}\r\n)" in out
    out = c.ok("a FETCH 3 (BODY[1])")  # not PEEK: sets \Seen and reports it
    assert b"FLAGS (\\Recent \\Seen)" in out
    assert b"\\Seen" in c.ok("a FETCH 2 (RFC822.TEXT)")


def test_sequence_sets_with_star_and_ranges(store: SqliteStore) -> None:
    c = selected(store)
    seqs = lambda out: [int(m) for m in re.findall(rb"\* (\d+) FETCH", out)]  # noqa: E731
    assert seqs(c.ok("a FETCH * FLAGS")) == [3]
    assert seqs(c.ok("a FETCH 3:1 FLAGS")) == [1, 2, 3]
    assert seqs(c.ok("a FETCH 2:* FLAGS")) == [2, 3]
    assert seqs(c.ok("a FETCH 1,3 FLAGS")) == [1, 3]
    assert seqs(c.ok("a UID FETCH 2:* FLAGS")) == [2, 3]
    assert seqs(c.ok("a UID FETCH 10:* FLAGS")) == [3]  # * is the largest UID
    assert seqs(c.ok("a UID FETCH 10:20 FLAGS")) == []
    assert b"a BAD" in c.send("a FETCH 4 FLAGS")  # no such message number
    assert b"a BAD" in c.send("a STORE 2:4 +FLAGS (\\Seen)")
    assert b"\\Seen" not in c.ok("a FETCH 2 FLAGS")  # nothing was changed
    assert b"a BAD" in c.send("a FETCH 0 FLAGS")


def test_search_keys(store: SqliteStore) -> None:
    c = selected(store)

    def search(criteria: bytes) -> list[int]:
        out = c.ok(b"a SEARCH " + criteria)
        return [int(n) for n in untagged(out)[0].split()[1:]]

    assert search(b"ALL") == [1, 2, 3]
    assert search(b"UNSEEN") == [2, 3] and search(b"SEEN") == [1]
    assert search(b"FLAGGED") == [2] and search(b"OR FLAGGED SEEN") == [1, 2]
    assert search(b"NOT FLAGGED") == [1, 3] and search(b"NEW") == [2, 3]
    assert search(b"SUBJECT two") == [2] and search(b"FROM sender@example.com") == [1, 2, 3]
    assert search(b"TO alice BODY hello") == [1, 2]
    assert search(b"TEXT Message-ID") == [1, 2]
    assert search(b"HEADER Message-ID one@") == [1] and search(b"HEADER MIME-Version 1") == [3]
    assert search(b"BEFORE 1-Jan-2000") == [2] and search(b"SINCE 1-Jan-2000") == [1, 3]
    assert search(b"SENTON 7-Feb-1994") == [1, 2]
    assert search(b"LARGER 200") == [3] and search(b"SMALLER 200") == [1, 2]
    assert search(b"2:* UID 1:2") == [2]
    assert search(b"OR (SEEN) (FLAGGED) NOT (SUBJECT one)") == [2]
    assert search(b"KEYWORD $x") == [] and search(b"UNKEYWORD $x") == [1, 2, 3]
    assert search(b"CHARSET UTF-8 BODY {5}\r\nCaf\xc3\xa9") == [3]
    assert search(b"CHARSET US-ASCII SUBJECT parts") == [3]
    assert b" [BADCHARSET" in c.send("a SEARCH CHARSET KOI8-R ALL")
    assert untagged(c.ok("a UID SEARCH SUBJECT parts")) == [b"SEARCH 3"]


def test_store_copy_move_expunge(store: SqliteStore) -> None:
    c = selected(store)
    assert untagged(c.ok("a STORE 1 +FLAGS (\\Deleted)")) == [
        b"1 FETCH (FLAGS (\\Deleted \\Recent \\Seen))"
    ]
    assert untagged(c.ok("a STORE 2 -FLAGS.SILENT (\\Flagged)")) == []
    # A keyword new to the mailbox is announced before the FETCH shows it (§7.2.6).
    assert untagged(c.ok("a UID STORE 3 FLAGS ($Label \\Answered)")) == [
        b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label)",
        b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label \\*)] ok",
        b"3 FETCH (UID 3 FLAGS ($Label \\Answered \\Recent))",
    ]
    trash = store.get_mailbox(1, "Trash")
    assert trash is not None
    assert f"a OK [COPYUID {trash.uidvalidity} 1:2 1:2]".encode() in c.ok("a COPY 1:2 Trash")
    assert b"[COPYUID" in c.ok("a UID COPY 3 Trash")
    assert b"a NO [TRYCREATE]" in c.send("a COPY 1 Nope")
    out = c.ok("a MOVE 2 Junk")
    assert untagged(out)[-1] == b"2 EXPUNGE"
    out = c.ok("a EXPUNGE")
    assert untagged(out) == [b"1 EXPUNGE"]
    assert untagged(c.ok("a FETCH 1:* (UID)")) == [b"1 FETCH (UID 3)"]
    assert store.list_messages(trash.id)[0].flags == {"\\Deleted", "\\Seen"}
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("a CLOSE")  # expunges silently
    assert store.list_messages(1) == []
    assert b"a BAD" in c.send("a FETCH 1 FLAGS")  # not selected any more


def test_examine_is_read_only_and_misc_commands(store: SqliteStore) -> None:
    c = selected(store)
    c.ok("a EXAMINE Trash")
    assert b"a NO [READ-ONLY]" in c.send("a STORE 1:* +FLAGS (\\Seen)")
    c.ok("a CHECK")
    assert untagged(c.ok("a NAMESPACE")) == [b'NAMESPACE (("" "/")) NIL NIL']
    assert b"* ID (" in c.ok("a ID NIL")
    c.ok("a UNSELECT")
    assert b"* ENABLED CONDSTORE" in c.ok("a ENABLE CONDSTORE")
    c.ok("a NOOP")
    out = c.ok("a LOGOUT")
    assert untagged(out) == [b"BYE pushmail logging out"] and status_line(out, "a")


def test_list_status_of_many_folders_matches_status_and_children(store: SqliteStore) -> None:
    """LIST-STATUS (RFC 5819) reads all folders' counts at once and \\HasChildren
    from one pass over the names: each answer is what STATUS of that folder says,
    and a folder has children exactly when a name lies below it."""
    c = Client(store)
    c.login()
    folders = [f"p{i}" for i in range(12)] + [f"p{i}/c{j}" for i in range(0, 12, 3) for j in (1, 2)]
    folders += ["p1/c1/d", "q/r/s"]  # q and q/r exist as parents
    for name in folders:
        c.ok(f"a CREATE {name}")
    for n in range(14):
        append(c, folders[n * 3 % len(folders)], raw_message(f"m{n}"), "\\Seen" * (n % 2))
    c.ok("a SUBSCRIBE p3")
    c.ok("a SUBSCRIBE p3/c1")
    items = "MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED"
    names = [line.rsplit(b" ", 1)[1].decode() for line in untagged(c.ok('a LIST "" *'))]
    subscribed = untagged(c.ok('a LIST (SUBSCRIBED) "" *'))
    assert b'LIST (\\HasChildren \\Subscribed) "/" p3' in subscribed
    for selection in ("", "(SUBSCRIBED) "):
        lines = untagged(c.ok(f'a LIST {selection}"" * RETURN (STATUS ({items}))'))
        listed = [line for line in lines if line.startswith(b"LIST ")]
        assert len(lines) == 2 * len(listed)
        assert len(listed) == len(subscribed if selection else names)
        for line, status in zip(lines[::2], lines[1::2], strict=True):
            name = line.rsplit(b" ", 1)[1].decode()
            assert untagged(c.ok(f"s STATUS {name} ({items})")) == [status]
            below = any(other.startswith(name + "/") for other in names)
            assert (b"\\HasChildren" in line) == below, line
            assert (b"\\HasNoChildren" in line) == (not below), line


def test_fetch_lines_before_a_failing_message_still_go_out(store: SqliteStore) -> None:
    """FETCH collects its lines and writes them at once; a message that fails
    (BINARY of an unknown transfer encoding: NO [UNKNOWN-CTE]) still comes after
    the lines of the messages before it, as when each line went out by itself."""
    c = Client(store)
    c.login()
    append(c, "INBOX", raw_message("fine"))
    append(c, "INBOX", raw_message("odd", "abc\r\n", "Content-Transfer-Encoding: x-odd\r\n"))
    c.ok("s SELECT INBOX")
    out = c.send("f FETCH 1:2 (BINARY.PEEK[1])")
    assert out.startswith(b"* 1 FETCH (BINARY[1] {7}\r\nhello\r\n)\r\nf NO"), out
    assert status_line(out, "f").startswith(b"f NO [UNKNOWN-CTE]")
