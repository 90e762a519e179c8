"""Regression tests for the defects a third-party IMAP conformance run found (issue
14, items 4, 5, 6, 7, 9, 10, 11 and 12), each through a real socket to the real
driver (``LiveServer``)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import PASSWORD, LineClient, LiveServer, live_server


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path) as server:
        yield server


@pytest.fixture
def cl(srv: LiveServer) -> Iterator[LineClient]:
    with LineClient(srv.port) as client:
        client.login()
        yield client


def untagged(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ")]


def test_esearch_min_max_give_the_modseq_of_that_message(srv: LiveServer, cl: LineClient) -> None:
    """Item 4: RETURN (MIN) / (MAX) with a MODSEQ key report the MODSEQ of the one
    message returned (RFC 4731 §3.2, RFC 7162 §3.1.5); ALL and COUNT the highest."""
    for i in range(3):
        srv.deliver("INBOX", f"m{i}")
    cl.command("e", "ENABLE CONDSTORE")
    cl.command("s", "SELECT INBOX")
    cl.command("f1", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    cl.command("f2", "STORE 3 +FLAGS.SILENT (\\Answered)")
    cl.command("f3", "STORE 2 +FLAGS.SILENT (\\Draft)")  # message 2 now has the highest
    mods = {
        int(seq): int(mod)
        for seq, mod in re.findall(
            rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", b"\n".join(cl.command("m", "FETCH 1:3 MODSEQ"))
        )
    }
    assert mods[2] > mods[3] > mods[1]
    out = untagged(cl.command("a", "SEARCH RETURN (MIN) MODSEQ 1"))
    assert out == [b'* ESEARCH (TAG "a") MIN 1 MODSEQ %d' % mods[1]]
    out = untagged(cl.command("b", "SEARCH RETURN (MAX) MODSEQ 1"))
    assert out == [b'* ESEARCH (TAG "b") MAX 3 MODSEQ %d' % mods[3]]
    out = untagged(cl.command("c", "SEARCH RETURN (MIN MAX) MODSEQ 1"))
    assert out == [b'* ESEARCH (TAG "c") MIN 1 MAX 3 MODSEQ %d' % mods[3]]
    out = untagged(cl.command("d", "SEARCH RETURN (COUNT) MODSEQ 1"))
    assert out == [b'* ESEARCH (TAG "d") COUNT 3 MODSEQ %d' % mods[2]]
    out = untagged(cl.command("g", "SEARCH RETURN (MIN ALL) MODSEQ 1"))
    assert out == [b'* ESEARCH (TAG "g") MIN 1 ALL 1:3 MODSEQ %d' % mods[2]]


def test_examine_reports_recent_without_claiming(srv: LiveServer, cl: LineClient) -> None:
    """Item 5: EXAMINE says how many messages are \\Recent, and they stay \\Recent
    for the next SELECT (RFC 3501 §6.3.2)."""
    srv.deliver("INBOX", "one")
    srv.deliver("INBOX", "two")
    out = cl.command("x", "EXAMINE INBOX")
    assert b"* 2 RECENT" in out, out
    assert cl.command("st", "STATUS INBOX (RECENT)")[0] == b"* STATUS INBOX (RECENT 2)"
    out = cl.command("s", "SELECT INBOX")
    assert b"* 2 RECENT" in out, out


def test_lsub_percent_returns_noselect_parents(srv: LiveServer, cl: LineClient) -> None:
    """Item 6: with only a/b/c subscribed, ``LSUB "" a/%`` returns a/b as
    \\Noselect (RFC 3501 §6.3.9)."""
    cl.command("c", "CREATE a/b/c")
    cl.command("u", "SUBSCRIBE a/b/c")
    assert untagged(cl.command("l1", 'LSUB "" a/%')) == [b'* LSUB (\\Noselect) "/" a/b']
    out = untagged(cl.command("l2", 'LSUB "" %'))
    assert b'* LSUB (\\Noselect) "/" a' in out and b"INBOX" in out[1], out
    assert untagged(cl.command("l4", 'LSUB "" a/*')) == [b'* LSUB (\\HasNoChildren) "/" a/b/c']


def test_list_extended_subscribed_and_recursivematch(srv: LiveServer, cl: LineClient) -> None:
    """Item 7 (RFC 5258): a deleted mailbox that stays subscribed is listed
    \\NonExistent by LIST (SUBSCRIBED), and still by LSUB; RECURSIVEMATCH gives
    CHILDINFO ("SUBSCRIBED") for unsubscribed parents of subscribed children."""
    cl.command("c1", "CREATE gone")
    cl.command("c2", "CREATE top/mid/leaf")
    cl.command("u1", "SUBSCRIBE gone")
    cl.command("u2", "SUBSCRIBE top/mid/leaf")
    cl.command("d", "DELETE gone")
    out = untagged(cl.command("l1", 'LIST (SUBSCRIBED) "" gone'))
    assert out == [b'* LIST (\\NonExistent \\Subscribed) "/" gone']
    out = untagged(cl.command("l2", 'LSUB "" gone'))
    assert out == [b'* LSUB () "/" gone']  # RFC 3501 LSUB knows no \\NonExistent
    out = untagged(cl.command("l3", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" top/%'))
    assert out == [b'* LIST (\\HasChildren) "/" top/mid ("CHILDINFO" ("SUBSCRIBED"))']
    out = untagged(cl.command("l4", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" %'))
    assert b'* LIST (\\HasChildren) "/" top ("CHILDINFO" ("SUBSCRIBED"))' in out, out
    assert b'* LIST (\\NonExistent \\Subscribed) "/" gone' in out, out
    # Without RECURSIVEMATCH the parent is not listed.
    out = untagged(cl.command("l5", 'LIST (SUBSCRIBED) "" top/%'))
    assert out == []


def test_bad_modified_utf7_is_no_not_bad(srv: LiveServer, cl: LineClient) -> None:
    """Item 9: a well-formed name that is not valid modified UTF-7 gets NO for
    SELECT and CREATE and an empty OK for LIST; BAD would make strict clients drop
    the connection."""
    assert cl.command("s", "SELECT &Jjo")[-1].startswith(b"s NO ")
    assert cl.command("x", 'EXAMINE "bad&AGE"')[-1].startswith(b"x NO ")
    assert cl.command("c", 'CREATE "bad&name"')[-1].startswith(b"c NO [CANNOT]")
    assert cl.command("l", 'LIST "" "bad&name"') == [b"l OK LIST completed"]
    assert cl.command("t", "STATUS &Jjo (MESSAGES)")[-1].startswith(b"t NO ")
    assert cl.command("n", "NOOP") == [b"n OK NOOP completed"]


@pytest.mark.parametrize(
    "groups",
    ["(SELECTED (MessageNew))", "(PERSONAL (MessageExpunge))", "(INBOXES (FlagChange))"],
)
def test_notify_message_events_come_in_pairs(cl: LineClient, groups: str) -> None:
    """Item 10: MessageNew without MessageExpunge is refused exactly as FlagChange
    alone is (RFC 5465 §5)."""
    out = cl.command("n", "NOTIFY SET " + groups)
    assert out[-1].startswith(b"n BAD "), out
    assert cl.command("o", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")[-1].startswith(
        b"o OK"
    )


@pytest.mark.parametrize("uid", [False, True])
def test_condstore_implicit_seen_returns_flags_and_modseq(
    srv: LiveServer, cl: LineClient, uid: bool
) -> None:
    """Item 11: FETCH BODY[] (not PEEK) that sets \\Seen with CONDSTORE on returns
    FLAGS, MODSEQ and UID in that FETCH (RFC 7162 §3.1.4.1)."""
    srv.deliver("INBOX", "read me")
    cl.command("e", "ENABLE CONDSTORE")
    cl.command("s", "SELECT INBOX")
    out = cl.command("f", ("UID FETCH 1" if uid else "FETCH 1") + " BODY[]")
    head = out[0]
    assert head.startswith(b"* 1 FETCH (UID 1 BODY[] {"), out
    assert re.search(rb" FLAGS \([^)]*\\Seen[^)]*\) MODSEQ \(\d+\)\)$", head), head
    # Nothing is echoed afterwards: the change was reported in that FETCH.
    assert cl.command("n", "NOOP") == [b"n OK NOOP completed"]


def test_over_long_sasl_response_ends_the_exchange(srv: LiveServer, cl: LineClient) -> None:
    """Item 12: a SASL response line over the line cap gets BAD and ends the
    AUTHENTICATE; the next line is a command again, not eaten as SASL."""
    with LineClient(srv.port) as fresh:
        fresh.send(b"a AUTHENTICATE PLAIN\r\n")
        assert fresh.line().startswith(b"+")
        fresh.send(b"A" * 70_000 + b"\r\n")
        reply = fresh.line()
        assert reply.startswith(b"a BAD [TOOBIG]"), reply
        assert fresh.command("b", "NOOP") == [b"b OK NOOP completed"]
        reply = fresh.command("c", f"LOGIN alice@example.org {PASSWORD}")
        assert reply[-1].startswith(b"c OK"), reply


def test_fetch_of_a_held_expunge_says_expungeissued(srv: LiveServer, cl: LineClient) -> None:
    """Found by the state checker: a FETCH by number that names a message another
    session expunged (held back, RFC 3501 §7.4.1) leaves it out; the tagged OK now
    says why (RFC 5530 EXPUNGEISSUED) instead of a silent gap."""
    for i in range(3):
        srv.deliver("INBOX", f"m{i}")
    cl.command("s", "SELECT INBOX")
    with LineClient(srv.port) as other:
        other.login()
        other.command("s", "SELECT INBOX")
        other.command("d", "STORE 2 +FLAGS.SILENT (\\Deleted)")
        other.command("x", "EXPUNGE")
    out = cl.command("f", "FETCH 1:* (UID)")
    assert out == [
        b"* 1 FETCH (UID 1)",
        b"* 3 FETCH (UID 3)",
        b"f OK [EXPUNGEISSUED] FETCH completed",
    ], out
    assert cl.command("n", "NOOP") == [b"* 2 EXPUNGE", b"n OK NOOP completed"]
    assert cl.command("g", "FETCH 1:* (UID)")[-1] == b"g OK FETCH completed"
