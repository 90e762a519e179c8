"""SQLite-only guarantees: durability settings, real concurrent processes, scale."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pushmail.store.interfaces import MessageCache, NewMessage
from pushmail.store.sqlite import SqliteStore
from pushmail.store.sqlite_schema import MIGRATIONS

CACHE = MessageCache(b"NIL", b"NIL", b"NIL")

WRITER = """
import sys
from pathlib import Path
from pushmail.store.interfaces import MessageCache, NewMessage
from pushmail.store.sqlite import SqliteStore
store = SqliteStore(Path(sys.argv[1]))
box = int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for n in range(int(sys.argv[3])):
    raw = f"Subject: child {sys.argv[4]} {n}\\r\\n\\r\\nx\\r\\n".encode()
    store.append(box, NewMessage(raw, MessageCache(b"NIL", b"NIL", b"NIL")))
store.close()
"""


def test_durability_pragmas(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


def test_concurrent_processes_never_share_a_uid(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = SqliteStore(path)
    user = store.create_user("a@x", "h")
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    per_writer = 60
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(box.id), str(per_writer), str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.close()
    for n in range(per_writer):  # the parent writes at the same time
        store.append(box.id, NewMessage(f"Subject: parent {n}\r\n\r\nx\r\n".encode(), CACHE))
    for child in children:
        assert child.wait(timeout=60) == 0
        assert child.stdout is not None
        child.stdout.close()
    total = 3 * per_writer
    metas = store.list_messages(box.id)
    assert [m.uid for m in metas] == list(range(1, total + 1))
    assert len({m.modseq for m in metas}) == total  # one MODSEQ per append
    subjects = {store.get_raw(box.id, m.uid).split(b"\r\n")[0] for m in metas}
    assert len(subjects) == total  # nothing lost, nothing doubled
    store.close()


def test_big_delivery_and_big_mailbox(tmp_path: Path) -> None:
    """One message to 2,000 users is one transaction with one body; a 10,000
    message mailbox lists quickly. Loose bounds: a regression to per-row commits
    (one fsync each) or N+1 queries would blow far past them."""
    store = SqliteStore(tmp_path / "db")
    conn = store._conn
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users (address) VALUES (?)", [(f"u{i}@x",) for i in range(2000)])
    conn.executemany(
        "INSERT INTO mailboxes (user_id, name, uidvalidity) SELECT id, 'INBOX', 1 FROM users"
        " WHERE address = ?",
        [(f"u{i}@x",) for i in range(2000)],
    )
    conn.execute("COMMIT")
    boxes = [row[0] for row in conn.execute("SELECT id FROM mailboxes")]
    message = NewMessage(b"Subject: hi\r\n\r\nall\r\n", CACHE)
    start = time.perf_counter()
    store.deliver([(box, message) for box in boxes])
    assert time.perf_counter() - start < 5.0
    assert conn.execute("SELECT count(*) FROM bodies").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 2000

    big = boxes[0]
    store.deliver(
        [(big, NewMessage(f"Subject: {n}\r\n\r\n.\r\n".encode(), CACHE)) for n in range(10_000)]
    )
    start = time.perf_counter()
    metas = store.list_messages(big)
    assert time.perf_counter() - start < 2.0
    assert len(metas) == 10_001 and metas[-1].uid == 10_001
    store.store_flags(big, list(range(1, 10_002)), "add", frozenset({"\\Seen"}))
    assert store.counts(big).unseen == 0
    store.close()


def test_pruned_expunges_make_changes_incomplete(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    user = store.create_user("a@x", "h")
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    for n in range(3):
        store.append(box.id, NewMessage(f"{n}\r\n".encode(), CACHE, frozenset({"\\Deleted"})))
    store.expunge(box.id, [1])
    mid = store.changes_since(box.id, 0).highestmodseq
    store.expunge(box.id, [2])
    assert store.prune_expunged(older_than=3600) == 0  # all recent: kept
    assert store.changes_since(box.id, 0).expunged == (1, 2)
    store._conn.execute("UPDATE expunged SET at = at - 7200 WHERE uid = 1")
    assert store.prune_expunged(older_than=3600) == 1
    old = store.changes_since(box.id, 0)
    assert old.expunged == (2,) and not old.expunged_complete
    recent = store.changes_since(box.id, mid)
    assert recent.expunged == (2,) and recent.expunged_complete
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    store._conn.execute("UPDATE schema_version SET version = 99")
    store.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteStore(tmp_path / "db")


def test_claim_recent_without_waiting_gives_up_while_another_writer_holds_the_lock(
    tmp_path: Path,
) -> None:
    """A wake-up's claim must not wait behind a committing delivery: it gets no
    \\Recent messages then, they stay for the next claim, and the connection's
    settings (busy timeout, synchronous=FULL) are as before."""
    store = SqliteStore(tmp_path / "db")
    other = SqliteStore(tmp_path / "db")
    try:
        user = store.create_user("a@example.org", "x")
        box = store.get_mailbox(user.id, "INBOX")
        assert box is not None
        store.append(box.id, NewMessage(b"Subject: a\r\n\r\nx\r\n", CACHE))
        other._conn.execute("BEGIN IMMEDIATE")  # another process mid-commit
        try:
            assert store.claim_recent(box.id, wait=False) == 2  # nothing below UIDNEXT
        finally:
            other._conn.execute("ROLLBACK")
        assert store.claim_recent(box.id, wait=False) == 1  # still there, now taken
        assert store.claim_recent(box.id, wait=False) == 2
        conn = store._conn
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        other.close()
        store.close()


def test_a_writer_waits_for_the_lock_held_by_another_process(tmp_path: Path) -> None:
    """The store's own wait for the write lock (short polls, not SQLite's growing
    sleeps) still waits: a delivery during another writer's commit succeeds."""
    import sqlite3
    import threading

    store = SqliteStore(tmp_path / "db")
    other = sqlite3.connect(tmp_path / "db", isolation_level=None, check_same_thread=False)
    try:
        user = store.create_user("a@example.org", "x")
        box = store.get_mailbox(user.id, "INBOX")
        assert box is not None
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
        release.start()
        try:
            got = store.append(box.id, NewMessage(b"Subject: a\r\n\r\nx\r\n", CACHE))
        finally:
            release.join()
        assert got.uid == 1
        assert store.uids(box.id) == [1]
    finally:
        other.close()
        store.close()


def test_version_1_file_gets_keyword_lists_from_its_messages(tmp_path: Path) -> None:
    """Issue 14 item 2: a database made before keyword lists (schema 1) is migrated
    with each mailbox's list taken from the keywords its messages have."""
    import sqlite3

    from pushmail.store.sqlite_schema import MIGRATIONS, _statements

    path = tmp_path / "db"
    conn = sqlite3.connect(str(path), isolation_level=None)
    first = MIGRATIONS[0]
    assert isinstance(first, str)
    for statement in _statements(first):
        conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO users (id, address) VALUES (1, 'a@x')")
    for box, name in ((1, "INBOX"), (2, "Trash"), (3, "Empty")):
        conn.execute(
            "INSERT INTO mailboxes (id, user_id, name, uidvalidity) VALUES (?, 1, ?, ?)",
            (box, name, box),
        )
    conn.execute(
        "INSERT INTO bodies (id, sha256, size, envelope, bodystructure, body, raw) "
        "VALUES (1, x'00', 1, '', '', '', 'x')"
    )
    for box, uid, flags in ((1, 1, "$b \\Seen"), (1, 2, "$a $b"), (2, 1, "\\Deleted junk")):
        conn.execute(
            "INSERT INTO messages (mailbox_id, uid, body_id, modseq, flags, internaldate, size) "
            "VALUES (?, ?, 1, 1, ?, 0, 1)",
            (box, uid, flags),
        )
    conn.close()
    store = SqliteStore(path)
    assert store.keywords(1) == ("$a", "$b")
    assert store.keywords(2) == ("junk",)
    assert store.keywords(3) == ()
    used = store.get_quota(1)[1]
    assert (used.storage, used.messages) == (3, 3)  # the quota migration counted them
    version = store._conn.execute("SELECT version FROM schema_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    store.close()


def test_keyword_list_grows_with_store_append_and_copy(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    user = store.create_user("a@x", "h")
    inbox, trash = store.get_mailbox(user.id, "INBOX"), store.get_mailbox(user.id, "Trash")
    assert inbox is not None and trash is not None
    store.append(inbox.id, NewMessage(b"x", CACHE, frozenset({"$z", "\\Seen"})))
    store.store_flags(inbox.id, [1], "add", frozenset({"$y"}))
    assert store.keywords(inbox.id) == ("$z", "$y")
    store.store_flags(inbox.id, [1], "remove", frozenset({"$z", "$y"}))
    assert store.keywords(inbox.id) == ("$z", "$y")  # defined once, for good
    store.store_flags(inbox.id, [1], "add", frozenset({"$x"}))
    store.copy(inbox.id, [1], trash.id)
    assert store.keywords(trash.id) == ("$x",)
    assert store.changes_since(trash.id, 0).keywords == ("$x",)
    assert store.select_info(inbox.id).keywords == ("$z", "$y", "$x")
    store.close()
