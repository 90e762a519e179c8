"""SORT, THREAD, ESORT and WITHIN (RFC 5256, 5957, 5267, 5032) run by a session on
both store backends."""

from __future__ import annotations

import sys
from pathlib import Path

from test_session_harness import Client, append, store, untagged

from pushmail.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from sort_corpus import messages

__all__ = ["store"]  # the fixture, re-exported for pytest


def _msg(
    subject: str, sender: str, to: str, date: str, mid: str, refs: str = "", body: str = "x"
) -> bytes:
    extra = f"References: {refs}\r\n" if refs else ""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{mid}>\r\n{extra}\r\n{body}\r\n"
    ).encode()


MESSAGES = [
    # seq 1..5
    _msg("Hello", "Zed <zed@b.org>", "amy@x.org", "Mon, 7 Feb 2022 10:00:00 +0000", "a@x"),
    _msg("Re: hello", "bob@b.org", "Cat <cat@x.org>", "Mon, 7 Feb 2022 09:00:00 -0300", "b@x",
         "<a@x>", body="longer body text"),
    _msg("[list] Other", "\"Al\" <al@b.org>", "bo@x.org", "Sun, 6 Feb 2022 10:00:00 +0000",
         "c@x"),
    _msg("Re: Re: Hello", "abe@b.org", "amy@x.org", "Tue, 8 Feb 2022 10:00:00 +0000", "d@x",
         "<a@x> <b@x>"),
    _msg("other", "abe@b.org", "", "Sat, 5 Feb 2022 10:00:00 +0000", "e@x"),
]


def _client(store: SqliteStore) -> Client:
    c = Client(store)
    c.login()
    for raw in MESSAGES:
        append(c, "INBOX", raw)
    c.ok("S SELECT INBOX")
    return c


def _one(c: Client, command: str) -> bytes:
    lines = [u for u in untagged(c.ok(command)) if not u.startswith((b"OK", b"FLAGS"))]
    assert len(lines) == 1, lines
    return lines[0]


def test_sort_by_each_key_and_reverse(store: SqliteStore) -> None:
    c = _client(store)
    caps = untagged(c.ok("C CAPABILITY"))[0]
    for cap in (b"SORT", b"SORT=DISPLAY", b"THREAD=REFERENCES", b"ESORT", b"WITHIN"):
        assert cap in caps.split()
    assert _one(c, "A SORT (SUBJECT) UTF-8 ALL") == b"SORT 1 2 4 3 5"
    assert _one(c, "A SORT (DATE) UTF-8 ALL") == b"SORT 5 3 1 2 4"
    assert _one(c, "A SORT (REVERSE DATE) UTF-8 ALL") == b"SORT 4 2 1 3 5"
    assert _one(c, "A SORT (FROM) US-ASCII ALL") == b"SORT 4 5 3 2 1"
    assert _one(c, "A SORT (DISPLAYFROM) UTF-8 ALL") == b"SORT 4 5 3 2 1"
    assert _one(c, "A SORT (TO) UTF-8 ALL") == b"SORT 5 1 4 3 2"
    assert _one(c, "A SORT (DISPLAYTO) UTF-8 ALL") == b"SORT 5 1 4 3 2"
    assert _one(c, "A SORT (SIZE) UTF-8 ALL")[:6] == b"SORT 5"
    assert _one(c, "A SORT (ARRIVAL) UTF-8 ALL") == b"SORT 1 2 3 4 5"
    # Ties keep sequence order even under REVERSE (two messages each from abe).
    assert _one(c, "A SORT (REVERSE CC SUBJECT) UTF-8 ALL") == b"SORT 1 2 4 3 5"
    assert _one(c, "A SORT (SUBJECT) UTF-8 FROM abe") == b"SORT 4 5"
    assert _one(c, "A UID SORT (SUBJECT) UTF-8 UID 2:*") == b"SORT 2 4 3 5"
    out = c.send("B SORT (SUBJECT) ISO-8859-1 ALL")
    assert b"B NO [BADCHARSET" in out
    assert b"B BAD" in c.send("B SORT (NOSUCHKEY) UTF-8 ALL")
    assert b"B BAD" in c.send("B SORT SUBJECT UTF-8 ALL")


def test_esort_return_options(store: SqliteStore) -> None:
    c = _client(store)
    got = _one(c, "E1 SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    assert got == b'ESEARCH (TAG "E1") MIN 5 MAX 4 ALL 5,3,1:2,4 COUNT 5'
    got = _one(c, "E2 UID SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing")
    assert got == b'ESEARCH (TAG "E2") UID COUNT 0'
    assert _one(c, "E3 SORT RETURN () (SUBJECT) UTF-8 ALL") == b'ESEARCH (TAG "E3") ALL 1:2,4,3,5'


def test_thread_algorithms(store: SqliteStore) -> None:
    c = _client(store)
    # 2 replies to 1, 4 to 2 (References); 3 and 5 share the base subject "other".
    assert _one(c, "T THREAD REFERENCES UTF-8 ALL") == b"THREAD ((5)(3))(1 2 4)"
    assert _one(c, "T THREAD ORDEREDSUBJECT UTF-8 ALL") == b"THREAD (5 3)(1 (2)(4))"
    assert _one(c, "T UID THREAD REFERENCES UTF-8 NOT UID 2") == b"THREAD ((5)(3))(1 4)"
    assert _one(c, "T THREAD REFERENCES UTF-8 SUBJECT nothing") == b"THREAD"


def test_within_older_younger(store: SqliteStore) -> None:
    c = _client(store)  # every message was appended just now
    assert untagged(c.ok("W SEARCH YOUNGER 3600"))[0] == b"SEARCH 1 2 3 4 5"
    assert untagged(c.ok("W SEARCH OLDER 3600"))[0] == b"SEARCH"
    assert b"W BAD" in c.send("W SEARCH OLDER 0")


def test_cached_answer_follows_changes(store: SqliteStore) -> None:
    c = _client(store)
    assert _one(c, "A SORT (SUBJECT) UTF-8 ALL") == b"SORT 1 2 4 3 5"
    assert _one(c, "A SORT (SUBJECT) UTF-8 ALL") == b"SORT 1 2 4 3 5"
    append(c, "INBOX", _msg("aaa", "x@y", "z@y", "Mon, 7 Feb 2022 10:00:00 +0000", "f@x"))
    c.ok("N NOOP")
    assert _one(c, "A SORT (SUBJECT) UTF-8 ALL") == b"SORT 6 1 2 4 3 5"
    c.ok("S STORE 6 +FLAGS (\\Deleted)")
    assert _one(c, "A SORT (SUBJECT) UTF-8 UNDELETED") == b"SORT 1 2 4 3 5"


def test_cached_orders_agree_with_a_fresh_store_object(tmp_path: Path) -> None:
    """Appends and expunges between SORT/THREAD ALL: the answers a session gets from
    the caches (inserted arrivals, extended REFERENCES links) equal those of a
    session on a store object that has no cache."""
    path = tmp_path / "store.sqlite3"
    first = SqliteStore(path)
    try:
        first.create_user("alice@example.org", "{PLAIN}alice-pw")
        c = Client(first)
        c.login()
        c.ok("S SELECT INBOX")
        raws = messages(60, seed=11)
        commands = ["A SORT (SUBJECT) UTF-8 ALL", "A UID SORT (REVERSE DATE FROM) UTF-8 ALL",
                    "A THREAD REFERENCES UTF-8 ALL", "A UID THREAD REFERENCES UTF-8 ALL"]
        for step in range(12):
            for raw in raws[step * 5:step * 5 + 5]:
                append(c, "INBOX", raw)
            if step % 4 == 3:
                c.ok(f"X STORE {step}:{step + 2} +FLAGS (\\Deleted)")
                c.ok("X EXPUNGE")
            c.ok("N NOOP")
            fresh = SqliteStore(path)
            try:
                f = Client(fresh)
                f.login()
                f.ok("S EXAMINE INBOX")
                for command in commands:
                    assert _one(c, command) == _one(f, command), (step, command)
            finally:
                fresh.close()
    finally:
        first.close()
