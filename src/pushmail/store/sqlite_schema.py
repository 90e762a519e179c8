"""The SQLite schema and how a database file is opened and migrated.

Kept apart from ``sqlite.py`` so the queries there read without the DDL in the way.
The schema is versioned (``schema_version``): each entry of ``MIGRATIONS`` moves the
file one version up, inside one write transaction, so two processes opening a new
file at the same moment cannot both create it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

Migration = str | Callable[[sqlite3.Connection], None]


def _add_keywords(conn: sqlite3.Connection) -> None:
    """Version 2: the keywords defined in a mailbox, space separated, in the order
    they were first used: what FLAGS and PERMANENTFLAGS list (RFC 3501 §7.2.6). The
    list only ever grows, so a session knows what it has announced from a count.
    An existing file gets each mailbox's list from its messages' flags (sorted, for
    want of the order in which they first appeared), inside the migration's write
    transaction."""
    conn.execute("ALTER TABLE mailboxes ADD COLUMN keywords TEXT NOT NULL DEFAULT ''")
    found: dict[int, set[str]] = {}
    rows = conn.execute("SELECT DISTINCT mailbox_id, flags FROM messages WHERE flags != ''")
    for mailbox_id, flags in rows:
        words = {f for f in str(flags).split(" ") if f and not f.startswith("\\")}
        if words:
            found.setdefault(int(mailbox_id), set()).update(words)
    conn.executemany(
        "UPDATE mailboxes SET keywords = ? WHERE id = ?",
        [(" ".join(sorted(words)), mailbox_id) for mailbox_id, words in found.items()],
    )


# Version 1: the first schema. Later changes append a new entry (an SQL script or a
# function of the connection); never edit one.
MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        address       TEXT NOT NULL UNIQUE,          -- lower-cased
        password_hash TEXT NOT NULL DEFAULT ''
    );

    CREATE TABLE mailboxes (
        id            INTEGER PRIMARY KEY,
        user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        uidvalidity   INTEGER NOT NULL,
        uidnext       INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        special_use   TEXT,
        recent_floor  INTEGER NOT NULL DEFAULT 1,    -- first UID still \\Recent
        vanished_floor INTEGER NOT NULL DEFAULT 0,   -- expunges at or below are forgotten
        UNIQUE (user_id, name)
    );

    CREATE TABLE subscriptions (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name    TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    ) WITHOUT ROWID;

    -- One row per distinct message text, however many mailboxes hold it.
    CREATE TABLE bodies (
        id            INTEGER PRIMARY KEY,
        sha256        BLOB NOT NULL UNIQUE,
        size          INTEGER NOT NULL,
        envelope      BLOB NOT NULL,
        bodystructure BLOB NOT NULL,
        body          BLOB NOT NULL,
        raw           BLOB NOT NULL                  -- last: keeps the row header small
    );

    CREATE TABLE messages (
        mailbox_id   INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid          INTEGER NOT NULL,
        body_id      INTEGER NOT NULL REFERENCES bodies(id),
        modseq       INTEGER NOT NULL,
        flags        TEXT NOT NULL DEFAULT '',       -- sorted, space separated
        internaldate INTEGER NOT NULL,               -- unix seconds
        tzoffset     INTEGER NOT NULL DEFAULT 0,     -- minutes east of UTC
        size         INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
    CREATE INDEX messages_by_body ON messages (body_id);

    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid        INTEGER NOT NULL,
        modseq     INTEGER NOT NULL,
        at         INTEGER NOT NULL,                 -- unix seconds, for pruning
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX expunged_by_modseq ON expunged (mailbox_id, modseq);
    """,
    _add_keywords,
    # Version 3: the PREVIEW text of each body (RFC 8970), in a table of its own:
    # a column added to ``bodies`` would come after ``raw``, and reading it would
    # walk the text's overflow pages. Filled at delivery; for texts stored before,
    # by the start-up refresh (``sqlite_refresh``, STRUCTURE_VERSION 2).
    """
    CREATE TABLE previews (
        body_id INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
        preview TEXT NOT NULL
    );
    """,
    # Version 4: when each message was saved into its mailbox (RFC 8514 SAVEDATE),
    # unix seconds; NULL for messages saved before: their SAVEDATE is NIL.
    "ALTER TABLE messages ADD COLUMN savedate INTEGER",
    # Version 5: the SORT/THREAD keys of each body (RFC 5256, ``store/sortkeys.py``),
    # filled at delivery; texts stored before get theirs at their first SORT/THREAD,
    # as do rows of an older ``version`` of the extraction.
    """
    CREATE TABLE sortkeys (
        body_id   INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
        version   INTEGER NOT NULL,
        subject   TEXT NOT NULL,
        reply     INTEGER NOT NULL,
        addr_from TEXT NOT NULL,
        addr_to   TEXT NOT NULL,
        addr_cc   TEXT NOT NULL,
        disp_from TEXT NOT NULL,
        disp_to   TEXT NOT NULL,
        sent      INTEGER,
        msgid     TEXT,
        refs      TEXT NOT NULL
    );
    """,
    # Version 6: quotas (RFC 9208, store/quota.py): each user's limits, and each mailbox's
    # usage kept by triggers, so a quota check sums a user's mailbox rows instead
    # of their messages.
    """
    CREATE TABLE quotas (
        user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        storage_limit INTEGER,                       -- octets; NULL: unlimited
        message_limit INTEGER
    );
    ALTER TABLE mailboxes ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE mailboxes SET
        used_messages = (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id),
        used_bytes = (SELECT coalesce(sum(size), 0) FROM messages
                      WHERE mailbox_id = mailboxes.id);
    CREATE TRIGGER messages_usage_add AFTER INSERT ON messages BEGIN
        UPDATE mailboxes SET used_messages = used_messages + 1,
            used_bytes = used_bytes + NEW.size WHERE id = NEW.mailbox_id;
    END;
    CREATE TRIGGER messages_usage_sub AFTER DELETE ON messages BEGIN
        UPDATE mailboxes SET used_messages = used_messages - 1,
            used_bytes = used_bytes - OLD.size WHERE id = OLD.mailbox_id;
    END;
    """,
    # Version 7: METADATA entries (RFC 5464, store/sqlite_metadata.py), each user's own,
    # /shared ones included (mailboxes are never shared); mailbox_id NULL: a server
    # entry. The cascade drops a mailbox's entries with it; RENAME keeps its id.
    """
    CREATE TABLE metadata (
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        mailbox_id INTEGER REFERENCES mailboxes(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,                   -- lower case: names ignore case
        value      BLOB NOT NULL
    );
    CREATE UNIQUE INDEX metadata_entry ON metadata (user_id, coalesce(mailbox_id, 0), name);
    """,
)

BUSY_TIMEOUT_SECONDS = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` for durable use by several processes.

    WAL lets readers run beside the one writer; ``synchronous=FULL`` makes every
    COMMIT fsync the WAL, which is the promise "returned means on disk". The busy
    timeout makes a writer wait for another process's transaction instead of
    failing. ``isolation_level=None`` leaves transactions to us (BEGIN IMMEDIATE).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, cached_statements=256
    )
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS gc_bodies (body_id INTEGER PRIMARY KEY)")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file up to the newest schema version (no-op when current)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this pushmail")
        for step in MIGRATIONS[version:]:
            if callable(step):
                step(conn)
                continue
            for statement in _statements(step):
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
        else:
            conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would COMMIT)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines():
        current += line.split("--", 1)[0] + "\n"
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
