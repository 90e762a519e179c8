"""Issue 14, items 1, 3 and 8, through a real server: mail delivered over LMTP, read
back over IMAP.

1. Folded MIME parameters and RFC 2231 continuations: every part of such a message is
   served (BODY[n], BODY[n.MIME], BINARY[n], BINARY.SIZE, partials, BODYSTRUCTURE).
3. NUL never goes out in a plain literal (CHAR8); BINARY[] sends it in ``~{n}``.
8. Comments in addresses stay out of ENVELOPE and do not stop SEARCH FROM; a source
   route is the at-domain-list.
"""

from __future__ import annotations

import smtplib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from mime_diff import PASSWORD, USER, Imap, fetch_items

FOLDED = (
    b"From: a@example.org\r\n"
    b"Subject: folded\r\n"
    b'Content-Type: multipart/mixed; boundary="foo\r\n bar"\r\n'
    b"\r\n"
    b"--foo bar\r\n"
    b'Content-Type: text/plain;\r\n charset=\r\n "utf-8"\r\n'
    b"\r\n"
    b"first\r\n"
    b"--foo bar\r\n"
    b"Content-Type: application/octet-stream;\r\n"
    b" name*0*=utf-8''%E2%82%AC%20rat; name*1*=es.bin\r\n"
    b'Content-Disposition: attachment; filename="a very\r\n long name.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGVsbG8=\r\n"
    b"--foo bar--\r\n"
)
RFC2231 = (
    b"From: a@example.org\r\n"
    b"Content-Type: multipart/mixed;\r\n"
    b' boundary*0="abc";\r\n boundary*1="-def"\r\n'
    b"\r\n"
    b"--abc-def\r\n\r\none\r\n--abc-def\r\n\r\ntwo\r\n--abc-def--\r\n"
)
NUL = (
    b"From: a@example.org\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"a\x00b\x00c\r\n"
)
COMMENTS = (
    b"From: <user-from (comment)@ (comment) domain.org>\r\n"
    b"Sender: Routed <@route:user@domain.org>\r\n"
    b"To: (lead) bob (middle) @ (domain) example.net (Bob Himself)\r\n"
    b"Subject: comments\r\n"
    b"\r\n"
    b"body\r\n"
)


@pytest.fixture
def imap(server: Server) -> Iterator[Imap]:
    with smtplib.LMTP("127.0.0.1", server.lmtp) as lmtp:
        for raw in (FOLDED, RFC2231, NUL, COMMENTS):
            lmtp.sendmail("sender@example.net", [USER], raw)
    client = Imap(server.imap)
    client.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
    client.ok(b"SELECT INBOX")
    yield client
    client.close()


def _fetch(imap: Imap, seq: int, items: bytes) -> dict[bytes, object]:
    return dict(fetch_items(imap.ok(b"FETCH %d (%s)" % (seq, items)))[seq])


def test_folded_boundary_and_parameters(imap: Imap) -> None:
    got = _fetch(
        imap,
        1,
        b"BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[2] BINARY.SIZE[1] BINARY.SIZE[2] "
        b"BODY.PEEK[2]<0.4> BODYSTRUCTURE",
    )
    assert got[b"BODY[1]"] == b"first"
    assert got[b"BODY[1.MIME]"] == b'Content-Type: text/plain;\r\n charset=\r\n "utf-8"\r\n\r\n'
    assert got[b"BINARY[2]"] == b"hello"
    assert (got[b"BINARY.SIZE[1]"], got[b"BINARY.SIZE[2]"]) == (5, 5)
    assert got[b"BODY[2]<0>"] == b"aGVs"
    text, attachment, subtype, params = got[b"BODYSTRUCTURE"][:4]  # type: ignore[index,misc]
    assert text[:3] == [b"text", b"plain", [b"charset", b"utf-8"]]
    assert attachment[2] == [b"name*", b"utf-8''%E2%82%AC%20rates.bin"]
    assert attachment[8] == [b"attachment", [b"filename", b"a very long name.bin"]]
    assert (subtype, params) == (b"mixed", [b"boundary", b"foo bar"])


def test_rfc2231_continued_boundary(imap: Imap) -> None:
    got = _fetch(imap, 2, b"BODY.PEEK[1] BODY.PEEK[2] BODYSTRUCTURE")
    assert (got[b"BODY[1]"], got[b"BODY[2]"]) == (b"one", b"two")
    assert got[b"BODYSTRUCTURE"][2:4] == [b"mixed", [b"boundary", b"abc-def"]]  # type: ignore[index]


def test_nul_goes_out_only_in_binary_literal8(imap: Imap) -> None:
    for item in (b"BODY.PEEK[1]", b"BODY.PEEK[]", b"BODY.PEEK[TEXT]", b"RFC822.TEXT"):
        untagged = imap.ok(b"FETCH 3 (" + item + b")")
        data = b"".join(untagged)
        assert b"\x00" not in data, item
        assert b"a\x80b\x80c\r\n" in data, item
    untagged = imap.ok(b"FETCH 3 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert b"BINARY[1] ~{7}\r\na\x00b\x00c\r\n" in b"".join(untagged)
    structure = _fetch(imap, 3, b"BODYSTRUCTURE")[b"BODYSTRUCTURE"]
    assert structure[5:7] == [b"binary", 7]  # type: ignore[index]


def test_address_comments_and_source_route(imap: Imap) -> None:
    env = _fetch(imap, 4, b"ENVELOPE")[b"ENVELOPE"]
    assert isinstance(env, list)
    assert env[2] == [[None, None, b"user-from", b"domain.org"]]
    assert env[3] == [[b"Routed", b"@route", b"user", b"domain.org"]]
    assert env[5] == [[b"Bob Himself", None, b"bob", b"example.net"]]
    for key in (b"FROM user-from@domain.org", b"TO bob@example.net", b"FROM user-from"):
        hits = [r for r in imap.ok(b"SEARCH " + key) if r.startswith(b"* SEARCH")]
        assert hits == [b"* SEARCH 4\r\n"], key


def test_structures_stored_by_older_code_are_redone_at_start(tmp_path: Path) -> None:
    """A message stored with the structures the code before the fix computed (a
    phantom part, a comment in the name) reads correctly after the server starts."""
    from e2e_server import free_port

    from pushmail.store.interfaces import MessageCache, NewMessage
    from pushmail.store.sqlite import SqliteStore

    srv = Server(tmp_path / "data", *(free_port() for _ in range(5)))
    srv.data_dir.mkdir()
    srv.add_user(USER, PASSWORD)
    store = SqliteStore(srv.data_dir / "pushmail.sqlite3")
    user = store.get_user(USER)
    assert user is not None
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    stale = MessageCache(
        b'(NIL NIL ((" (comment comment)" NIL "user-from" "domain.org")) NIL NIL NIL NIL '
        b"NIL NIL NIL)",
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)',
    )
    store.append(box.id, NewMessage(COMMENTS.replace(b"Sender", b"X-Sender") + FOLDED, stale))
    store.close()
    srv.start()
    try:
        client = Imap(srv.imap)
        client.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        client.ok(b"SELECT INBOX")
        got = _fetch(client, 1, b"ENVELOPE BODYSTRUCTURE")
        client.close()
    finally:
        srv.stop()
    assert got[b"ENVELOPE"][2] == [[None, None, b"user-from", b"domain.org"]]  # type: ignore[index]
    assert got[b"BODYSTRUCTURE"][6:8] == [len(b"body\r\n") + len(FOLDED), 1 + FOLDED.count(b"\n")]  # type: ignore[index]
