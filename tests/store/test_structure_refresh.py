"""Structures stored by older code are recomputed once, at startup (issue 14).

A message stored before the MIME fixes keeps the ENVELOPE/BODYSTRUCTURE computed at
its delivery; ``refresh_structures`` redoes them from the raw bytes when the stored
``structure_version`` is older than ``STRUCTURE_VERSION``, and only then.
"""

from __future__ import annotations

from pathlib import Path

from pushmail.imap.structure import STRUCTURE_VERSION, build_cache
from pushmail.store.interfaces import MessageCache, NewMessage
from pushmail.store.sqlite import SqliteStore
from pushmail.store.sqlite_refresh import refresh_structures, stored_structure_version

FOLDED = (
    b"From: <user-from (comment)@ (comment) domain.org>\r\n"
    b'Content-Type: multipart/mixed; boundary="foo\r\n bar"\r\n\r\n'
    b"--foo bar\r\n\r\none\r\n--foo bar--\r\n"
)
# What the code before version 1 stored for FOLDED: a phantom part, a leaked comment.
OLD = MessageCache(
    b'(NIL NIL ((" (comment comment)" NIL "user-from" "domain.org")) NIL NIL NIL NIL NIL NIL NIL)',
    b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed" '
    b'("boundary" "foo\r\n bar") NIL NIL NIL)',
    b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")',
)


def test_old_structures_are_recomputed_once(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    store = SqliteStore(db)
    user = store.create_user("a@example.org", "")
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    uid = store.append(box.id, NewMessage(FOLDED, OLD)).uid
    assert stored_structure_version(db) == 0
    assert store.get_cache(box.id, uid).preview is None  # stored before previews

    assert refresh_structures(db, STRUCTURE_VERSION, build_cache) == 1
    fresh = store.get_cache(box.id, uid)
    assert fresh == build_cache(FOLDED)
    assert b'(NIL NIL "user-from" "domain.org")' in fresh.envelope
    assert b'"boundary" "foo bar"' in fresh.bodystructure
    assert fresh.preview == "one"
    assert stored_structure_version(db) == STRUCTURE_VERSION

    # Current now: nothing is redone, even a row that differs.
    store.append(box.id, NewMessage(FOLDED + b"x", OLD))
    assert refresh_structures(db, STRUCTURE_VERSION, build_cache) == 0
    store.close()
