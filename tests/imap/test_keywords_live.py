"""Keywords new to a mailbox are announced (issue 14, item 2), through the real
driver: every session with the mailbox selected (the one that stored, another, an
idling one, a NOTIFY one) gets ``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` before any
FETCH that shows the keyword (RFC 3501 §7.2.6, RFC 9051 §7.3.5), SELECT lists every
keyword defined, and APPEND, COPY and MOVE that bring a new keyword do the same."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, live_server, message

from pushmail.store.interfaces import MAX_KEYWORDS_PER_MAILBOX

SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def flags_line(*keywords: str) -> bytes:
    return b"* FLAGS (" + b" ".join([SYSTEM, *(k.encode() for k in keywords)]) + b")"


def permanent_line(*keywords: str) -> bytes:
    words = b" ".join([SYSTEM, *(k.encode() for k in keywords)])
    return b"* OK [PERMANENTFLAGS (" + words + b" \\*)] ok"


def announced_before_fetch(lines: list[bytes], keyword: str) -> bool:
    """FLAGS naming ``keyword`` comes before the first FETCH that shows it."""
    kw = keyword.encode()
    for line in lines:
        if line.startswith(b"* FLAGS (") and kw in line[9:-1].split():
            return True
        if b" FETCH " in line and kw in line:
            return False
    return False


def append(cl: LineClient, tag: str, mailbox: str, flags: str, raw: bytes) -> list[bytes]:
    cl.send(f"{tag} APPEND {mailbox} ({flags}) {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    return cl.until(tag)


def selected(port: int) -> LineClient:
    cl = LineClient(port)
    cl.login()
    assert cl.command("s", "SELECT INBOX")[-1].startswith(b"s OK")
    return cl


def test_store_announces_to_the_storer_and_to_others(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        srv.deliver("INBOX", "one")
        srv.deliver("INBOX", "two")
        with selected(srv.port) as a, selected(srv.port) as b, selected(srv.port) as c:
            c.send(b"i IDLE\r\n")
            assert c.line() == b"+ idling"
            out = a.command("a1", "STORE 1 +FLAGS ($Label1)")
            assert out[:2] == [flags_line("$Label1"), permanent_line("$Label1")]
            assert out[2].startswith(b"* 1 FETCH (FLAGS ($Label1")
            # The idler hears the FLAGS line first, then the FETCH.
            assert c.line() == flags_line("$Label1")
            assert c.line() == permanent_line("$Label1")
            assert c.line().startswith(b"* 1 FETCH (FLAGS ($Label1")
            c.send(b"DONE\r\n")
            assert c.until("i")[-1].startswith(b"i OK")
            # A session that did nothing meanwhile: FLAGS before its FETCH.
            out = b.command("b1", "FETCH 1:* FLAGS")
            assert announced_before_fetch(out, "$Label1"), out
            assert out.count(flags_line("$Label1")) == 1
            # ...and only once: the next command says nothing more of it.
            assert b.command("b2", "NOOP") == [b"b2 OK NOOP completed"]
            # A later SELECT and EXAMINE list every keyword defined.
            for verb in ("SELECT", "EXAMINE"):
                out = b.command("b3", f"{verb} INBOX")
                assert flags_line("$Label1") in out, out
            # Removing the keyword from every message does not undefine it.
            a.command("a2", "STORE 1 -FLAGS ($Label1)")
            out = a.command("a3", "SELECT INBOX")
            assert flags_line("$Label1") in out and permanent_line("$Label1") in out


def test_store_silent_still_announces(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        srv.deliver("INBOX")
        with selected(srv.port) as a:
            out = a.command("a1", "STORE 1 +FLAGS.SILENT ($Work)")
            assert out == [flags_line("$Work"), permanent_line("$Work"), b"a1 OK STORE completed"]


def test_append_copy_and_move_announce_new_keywords(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        srv.deliver("INBOX")
        with selected(srv.port) as a, LineClient(srv.port) as t:
            t.login()
            t.command("t0", "SELECT Trash")
            out = append(a, "a1", "INBOX", "$Label2 \\Seen", message("appended"))
            assert out.index(flags_line("$Label2")) < out.index(b"* 2 EXISTS"), out
            a.command("a2", "STORE 1 +FLAGS.SILENT ($Label3)")
            # COPY into a mailbox another session has selected.
            a.command("a3", "COPY 1 Trash")
            out = t.command("t1", "FETCH 1:* FLAGS")
            assert out[0] == flags_line("$Label3"), out
            assert announced_before_fetch(out, "$Label3")
            # MOVE brings $Label2 there too.
            a.command("a4", "MOVE 2 Trash")
            out = t.command("t2", "FETCH 1:* FLAGS")
            assert flags_line("$Label3", "$Label2") in out, out  # with the new EXISTS
            out = t.command("t3", "FETCH 1:* FLAGS")
            assert b"$Label2" in out[1] and flags_line("$Label3", "$Label2") not in out


def test_notify_session_gets_flags_before_fetch(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        srv.deliver("INBOX")
        with selected(srv.port) as a, selected(srv.port) as n:
            n.command(
                "n1", "NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
            )
            a.command("a1", "STORE 1 +FLAGS ($Notified)")
            assert n.line() == flags_line("$Notified")
            assert n.line() == permanent_line("$Notified")
            assert n.line().startswith(b"* 1 FETCH (UID 1 FLAGS ($Notified")
            append(a, "a2", "INBOX", "$Fresh", message("fresh"))
            got = [n.line() for _ in range(5)]
            assert got[:2] == [
                flags_line("$Notified", "$Fresh"),
                permanent_line("$Notified", "$Fresh"),
            ]
            assert got[2:4] == [b"* 2 EXISTS", b"* 1 RECENT"] or got[2] == b"* 2 EXISTS", got
            assert b"$Fresh" in got[-1] and b"FETCH" in got[-1], got


def test_keywords_per_mailbox_are_capped(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        srv.deliver("INBOX")
        with selected(srv.port) as a:
            words = [f"k{i}" for i in range(MAX_KEYWORDS_PER_MAILBOX)]
            for start in range(0, len(words), 64):
                out = a.command(
                    "a1", "STORE 1 +FLAGS.SILENT (" + " ".join(words[start : start + 64]) + ")"
                )
                assert out[-1] == b"a1 OK STORE completed"
            # At the cap PERMANENTFLAGS no longer offers \*.
            assert out[-2].startswith(b"* OK [PERMANENTFLAGS (") and b"\\*" not in out[-2]
            out = a.command("a2", "STORE 1 +FLAGS (one-too-many)")
            assert out[-1].startswith(b"a2 NO [LIMIT]"), out
            out = append(a, "a3", "INBOX", "another-one", message("over"))
            assert out[-1].startswith(b"a3 NO [LIMIT]"), out
            # Keywords already defined still work.
            assert a.command("a4", "STORE 1 -FLAGS (k0)")[-1] == b"a4 OK STORE completed"
            assert a.command("a5", "STORE 1 +FLAGS (k0)")[-1] == b"a5 OK STORE completed"
