"""GETMETADATA and SETMETADATA (RFC 5464) run by a session on both store backends:
server and mailbox entries, DEPTH and MAXSIZE, the limits' response codes, entry
name syntax, binary values, and entries following RENAME and DELETE."""

from __future__ import annotations

from test_session_harness import Client, store, untagged

from pushmail.imap.cmd_metadata import MAX_ENTRIES, MAX_VALUE_SIZE
from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]  # the fixture, re-exported for pytest


def _meta(c: Client, command: str | bytes) -> list[bytes]:
    return [u for u in untagged(c.ok(command)) if u.startswith(b"METADATA")]


def test_set_get_delete_on_server_and_mailbox(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    assert b"METADATA" in untagged(c.ok("C CAPABILITY"))[0].split()
    c.ok('A SETMETADATA "" (/Shared/Comment "server note" /private/x "1")')
    c.ok('B SETMETADATA INBOX (/private/comment {5+}\r\nin\r\nx)')
    assert _meta(c, 'G GETMETADATA "" /shared/comment') == [
        b'METADATA "" (/shared/comment "server note")'
    ]
    # case folded; the mailbox's entries are not the server's; unknown is NIL
    assert c.ok("G GETMETADATA INBOX (/PRIVATE/COMMENT /private/x)").startswith(
        b"* METADATA INBOX (/private/comment {5}\r\nin\r\nx /private/x NIL)\r\nG OK"
    )
    c.ok('D SETMETADATA "" (/shared/comment NIL)')
    assert _meta(c, 'G GETMETADATA "" (/shared/comment /private/x)') == [
        b'METADATA "" (/shared/comment NIL /private/x "1")'
    ]
    out = c.send('N SETMETADATA nosuch (/private/a "b")')
    assert b"N NO [NONEXISTENT]" in out
    # another user sees none of it
    bob = Client(store)
    bob.login("bob@example.org", "bob-pw")
    assert _meta(bob, 'G GETMETADATA "" /private/x') == [b'METADATA "" (/private/x NIL)']


def test_depth_and_maxsize(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    c.ok(
        "S SETMETADATA INBOX (/private/filters/values/small \"SMALLER than 10K\" "
        "/private/filters/values/boss \"from:boss@example.com\" "
        "/private/filters/values/boss/deep \"d\" /private/filters \"top\")"
    )
    assert _meta(c, "G GETMETADATA (DEPTH 1) INBOX (/private/filters/values)") == [
        b'METADATA INBOX (/private/filters/values/boss "from:boss@example.com" '
        b'/private/filters/values/small "SMALLER than 10K")'
    ]
    got = _meta(c, "G GETMETADATA (DEPTH infinity) INBOX /private/filters")
    assert got[0].count(b"/private/filters") == 4
    assert _meta(c, "G GETMETADATA (DEPTH 1) INBOX /private/nothing") == []
    out = c.ok("G GETMETADATA (MAXSIZE 10 DEPTH infinity) INBOX /private/filters")
    assert untagged(out)[0] == b'METADATA INBOX (/private/filters "top" ' \
        b'/private/filters/values/boss/deep "d")'
    assert b"G OK [METADATA LONGENTRIES 21]" in out


def test_limits_and_syntax(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    big = b"x" * (MAX_VALUE_SIZE + 1)
    out = c.send(b"M SETMETADATA \"\" (/private/a ~{%d+}\r\n" % len(big) + big + b")")
    assert f"M NO [METADATA MAXSIZE {MAX_VALUE_SIZE}]".encode() in out
    binary = b"\x00\x01\xff"
    assert b"B OK" in c.send(b'B SETMETADATA "" (/private/bin ~{3+}\r\n' + binary + b")")
    assert c.send('G GETMETADATA "" /private/bin').startswith(
        b'* METADATA "" (/private/bin ~{3}\r\n\x00\x01\xff)\r\nG OK'
    )
    pairs = " ".join(f'/private/n{i} "v"' for i in range(MAX_ENTRIES))  # one is there already
    assert b"T NO [METADATA TOOMANY]" in c.send(f'T SETMETADATA "" ({pairs})')
    assert _meta(c, 'G GETMETADATA "" /private/n0') == [b'METADATA "" (/private/n0 NIL)']
    for bad in ("/other/x", "/private/", "/private//x", "/private/a*", "private/x", "/shared/%"):
        assert b"X BAD" in c.send(f'X SETMETADATA "" ({bad} "v")'), bad
        assert b"X BAD" in c.send(f'X GETMETADATA "" {bad}'), bad
    assert b"X BAD" in c.send('X GETMETADATA (DEPTH 2) "" /private/x')
    assert b"X BAD" in c.send('X GETMETADATA (NOSUCH 1) "" /private/x')
    assert b"X BAD" in c.send('X SETMETADATA "" ()')


def test_rename_keeps_and_delete_drops(store: SqliteStore) -> None:
    c = Client(store)
    c.login()
    c.ok("C CREATE Work")
    c.ok('S SETMETADATA Work (/shared/comment "w")')
    c.ok("R RENAME Work Job")
    assert _meta(c, "G GETMETADATA Job /shared/comment") == [
        b'METADATA Job (/shared/comment "w")'
    ]
    c.ok("D DELETE Job")
    c.ok("C CREATE Job")
    assert _meta(c, "G GETMETADATA Job /shared/comment") == [
        b"METADATA Job (/shared/comment NIL)"
    ]
