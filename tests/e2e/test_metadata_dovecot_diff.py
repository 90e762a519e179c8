"""Differential test (issue 18): METADATA (RFC 5464) of a real ``pushmail serve``
against a private Dovecot 2.3 with ``imap_metadata = yes`` and a file dictionary.
The same commands go to both (server and mailbox entries, NIL to delete, MAXSIZE,
DEPTH, bad entry names, a missing mailbox, RENAME and DELETE); the answers are
compared with the human-readable text after a status dropped. The differences are
listed in docs/extensions.md (METADATA): server entries are /private here, as Dovecot
refuses a user's /shared server entry (NO [CANNOT]), which pushmail keeps per user."""

from __future__ import annotations

import re
import socket
import sys
import tempfile
from pathlib import Path

from e2e_server import Server
from test_mime_dovecot_diff import _need_dovecot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import dovecot  # bench/ is not a package: found through sys.path above

USER, PASSWORD = "alice@example.org", "alice-secret"
METADATA_CONFIG = """
mail_attribute_dict = file:%h/dovecot-attributes
protocol imap {
  imap_metadata = yes
}
"""

COMMANDS = [
    'SETMETADATA "" (/private/comment "Server comment")',
    'SETMETADATA INBOX (/private/comment "My comment" /shared/comment "Shared INBOX")',
    'GETMETADATA "" /private/comment',
    "GETMETADATA INBOX (/shared/comment /private/comment)",
    "GETMETADATA INBOX (/Private/Comment)",
    "SETMETADATA INBOX (/private/comment NIL)",
    "GETMETADATA INBOX (/private/comment /shared/comment)",
    "GETMETADATA (MAXSIZE 100 DEPTH 1) INBOX (/shared)",
    "GETMETADATA (MAXSIZE 5) INBOX (/shared/comment)",
    'SETMETADATA INBOX (/private/a/b "1" /private/a/c "2" /private/a/c/d "3")',
    "GETMETADATA (DEPTH 1) INBOX /private/a",
    "GETMETADATA (DEPTH infinity) INBOX /private/a",
    'SETMETADATA INBOX (/private/bad* "x")',
    'SETMETADATA INBOX (/private/bad/ "x")',
    "GETMETADATA INBOX /other/x",
    "GETMETADATA nosuch /private/a",
    "CREATE Work",
    'SETMETADATA Work (/private/x "1")',
    "RENAME Work Job",
    "GETMETADATA Job /private/x",
    "DELETE Job",
    "CREATE Job",
    "GETMETADATA (DEPTH infinity) Job /private",
]
_STATUS = re.compile(rb"^(\S+ (?:OK|NO|BAD))( \[[^\]]*\])?.*$")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n")
_PAIR = re.compile(rb'(\S+) ("(?:[^"\\]|\\.)*"|NIL)')


def _quote_literals(data: bytes) -> bytes:
    """Dovecot sends every value as a literal, pushmail a quoted string where it can:
    the same value either way (these test values need no escaping)."""
    out, pos = b"", 0
    while m := _LITERAL.search(data, pos):
        n = int(m.group(1))
        out += data[pos : m.start()] + b'"' + data[m.end() : m.end() + n] + b'"'
        pos = m.end() + n
    return out + data[pos:]


def _normal(resp: bytes) -> bytes:
    """The status and its code without the text (CREATE's MAILBOXID and the
    NONEXISTENT code, which Dovecot does not send, dropped); a METADATA line's
    entries in name order (Dovecot lists DEPTH infinity's deepest first)."""
    if m := _STATUS.match(resp):
        code = m.group(2) or b""
        return m.group(1) + (b"" if b"MAILBOXID" in code or b"NONEXISTENT" in code else code)
    resp = resp.replace(b'"INBOX"', b"INBOX")
    if m := re.match(rb"^(\* METADATA \S+ )\((.*)\)$", resp):
        pairs = sorted(p.group(0) for p in _PAIR.finditer(m.group(2)))
        return m.group(1) + b"(" + b" ".join(pairs) + b")"
    return resp


def _exchange(sock: socket.socket, tag: bytes, line: bytes) -> list[bytes]:
    sock.sendall(tag + b" " + line + b"\r\n")
    data = b""
    while not re.search(rb"(^|\r\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n$", data):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return [_normal(resp) for resp in _quote_literals(data).split(b"\r\n")[:-1]]


def answers(port: int) -> list[list[bytes]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.recv(4096)  # the greeting
        _exchange(sock, b"L", f'LOGIN "{USER}" "{PASSWORD}"'.encode())
        return [_exchange(sock, b"T%d" % n, c.encode()) for n, c in enumerate(COMMANDS)]


def test_metadata_against_dovecot(server: Server) -> None:
    _need_dovecot()
    mine = answers(server.imap)
    with tempfile.TemporaryDirectory(prefix="pm-metadiff-dovecot-") as work:
        inst = dovecot.DovecotInstance(
            Path(work), [(USER, PASSWORD)], sessions=4, extra_config=METADATA_CONFIG
        )
        inst.start()
        try:
            theirs = answers(inst.imap_port)
        finally:
            inst.stop()
    for command, a, b in zip(COMMANDS, mine, theirs, strict=True):
        assert a == b, (command, a, b)
