"""Server behaviour the RFC example transcripts (tests/traces) showed missing, each
checked on its own in the session layer: RFC 7162 §3.1 (HIGHESTMODSEQ on the first
CONDSTORE enabling command), §3.2.4 (UID with MODSEQ), §3.2.5.2 (sequence match
data), §3.2.6 (VANISHED refused before anything is said), §3.2.7 (HIGHESTMODSEQ in
EXPUNGE's OK); RFC 5465 §5.1 and RFC 9051 §6.3.13 (UID in unsolicited FETCH)."""

from __future__ import annotations

import re

from test_session_harness import Client, append, raw_message, status_line, store, untagged

from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]


def filled(store: SqliteStore, n: int, enable: str = "") -> Client:
    c = Client(store)
    c.login()
    for i in range(n):
        append(c, "INBOX", raw_message(f"m{i}"))
    if enable:
        c.ok(f"e ENABLE {enable}")
    c.ok("s SELECT INBOX")
    return c


def highest(c: Client) -> int:
    out = c.ok("st STATUS INBOX (HIGHESTMODSEQ)")
    m = re.search(rb"HIGHESTMODSEQ (\d+)\)", out)
    assert m is not None, out
    return int(m.group(1))


def test_first_condstore_enabling_command_reports_highestmodseq_once(
    store: SqliteStore,
) -> None:
    c = filled(store, 2)
    first = untagged(c.ok("f FETCH 1 (MODSEQ)"))
    assert first[0].startswith(b"OK [HIGHESTMODSEQ ") and first[1].startswith(b"1 FETCH")
    again = untagged(c.ok("f2 FETCH 1 (MODSEQ)"))
    assert not any(line.startswith(b"OK [HIGHESTMODSEQ") for line in again)


def test_status_highestmodseq_is_an_enabling_command(store: SqliteStore) -> None:
    c = filled(store, 1)
    c.ok("st STATUS INBOX (HIGHESTMODSEQ)")
    b = filled(store, 0)
    b.ok("b STORE 1 +FLAGS (\\Flagged)")
    line = untagged(c.ok("n NOOP"))[0]
    assert re.fullmatch(rb"1 FETCH \(UID 1 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)", line)


def test_store_under_condstore_sends_uid_with_modseq(store: SqliteStore) -> None:
    c = filled(store, 2, "CONDSTORE")
    out = untagged(c.ok("a STORE 2 +FLAGS.SILENT (\\Seen)"))
    assert re.fullmatch(rb"2 FETCH \(UID 2 MODSEQ \(\d+\)\)", out[0]), out
    out = untagged(c.ok("b STORE 1 +FLAGS (\\Seen)"))
    assert out[0].startswith(b"1 FETCH (UID 1 FLAGS ("), out


def test_expunge_under_qresync_ends_with_highestmodseq(store: SqliteStore) -> None:
    c = filled(store, 3, "QRESYNC")
    c.ok("d STORE 2 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("x EXPUNGE")
    assert untagged(out) == [b"VANISHED 2"]
    assert status_line(out, "x") == b"x OK [HIGHESTMODSEQ %d] EXPUNGE completed" % highest(c)
    plain = filled(store, 0)  # without QRESYNC the code is optional: left out
    plain.ok("d STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert status_line(plain.ok("y EXPUNGE"), "y") == b"y OK EXPUNGE completed"


def test_vanished_without_qresync_is_bad_and_enables_nothing(store: SqliteStore) -> None:
    c = filled(store, 1)
    out = c.send("v UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert untagged(out) == [] and status_line(out, "v").startswith(b"v BAD")
    assert "CONDSTORE" not in c.session.enabled


def test_seq_match_data_limits_vanished_when_history_is_gone(store: SqliteStore) -> None:
    c = filled(store, 9, "QRESYNC")
    uv = re.search(rb"UIDVALIDITY (\d+)", c.ok("s2 SELECT INBOX"))
    assert uv is not None
    hm = highest(c)
    c.ok("d STORE 1:2,4:5,7:8 +FLAGS.SILENT (\\Deleted)")
    c.ok("x EXPUNGE")
    store.prune_expunged(-10.0)  # as if the expunge history had expired
    base = f"SELECT INBOX (QRESYNC ({uv.group(1).decode()} {hm} 1:9"
    full = untagged(c.ok(f"q1 {base}))"))
    assert b"VANISHED (EARLIER) 1:2,4:5,7:8" in full
    # Message 1 is UID 3 and message 2 UID 6: both pairs hold, so only UIDs above
    # 6 can be reported; a pair that does not hold (3 -> 8) stops the matching.
    part = untagged(c.ok(f"q2 {base} (1:3 3,6,8)))"))
    assert b"VANISHED (EARLIER) 7:8" in part


def test_unsolicited_fetch_carries_uid_under_notify_and_rev2(store: SqliteStore) -> None:
    other = filled(store, 2)
    n = filled(store, 0)
    n.ok("n NOTIFY SET (selected (MessageNew MessageExpunge FlagChange))")
    r = Client(store)
    r.login()
    r.ok("e ENABLE IMAP4rev2")
    r.ok("s SELECT INBOX")
    other.ok("f STORE 2 +FLAGS (\\Flagged)")
    assert untagged(n.ok("a NOOP")) == [b"2 FETCH (UID 2 FLAGS (\\Flagged))"]
    assert untagged(r.ok("b NOOP")) == [b"2 FETCH (UID 2 FLAGS (\\Flagged))"]
