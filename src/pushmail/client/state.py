"""What the watcher remembers across reconnects and restarts (stdlib sqlite3).

Per (account, folder): UIDVALIDITY, the UIDNEXT up to which every message has been
handled, and HIGHESTMODSEQ (so a reconnect that finds it unchanged knows nothing
arrived and fetches nothing). Per message: the key (account, folder, UIDVALIDITY, UID)
of every message announced, bounded to the newest ``keep`` per folder.

The claim is made *before* the hooks run and committed at once: a crash between the
claim and the hook loses that one notification rather than repeating it, because the
promise to the user is "never twice". The store is small and the watcher's write rate
is that of arriving mail, so the calls are synchronous (each well under a millisecond
on a local disk, WAL mode).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FolderState", "WatchState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS folder (
    account TEXT NOT NULL, folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL, highestmodseq INTEGER,
    PRIMARY KEY (account, folder));
CREATE TABLE IF NOT EXISTS notified (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (account, folder, uidvalidity, uid));
CREATE TABLE IF NOT EXISTS download (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL, path TEXT NOT NULL, partial INTEGER NOT NULL,
    PRIMARY KEY (account, folder, uidvalidity, uid));
"""


@dataclass(frozen=True, slots=True)
class FolderState:
    uidvalidity: int
    uidnext: int  # every UID below this has been handled
    highestmodseq: int | None = None


class WatchState:
    def __init__(self, path: Path, keep: int = 10000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self.keep = keep

    def close(self) -> None:
        self._db.close()

    def folder(self, account: str, folder: str) -> FolderState | None:
        row = self._db.execute(
            "SELECT uidvalidity, uidnext, highestmodseq FROM folder WHERE account=? AND folder=?",
            (account, folder),
        ).fetchone()
        return None if row is None else FolderState(row[0], row[1], row[2])

    def save_folder(self, account: str, folder: str, st: FolderState) -> None:
        self._db.execute(
            "INSERT INTO folder VALUES (?,?,?,?,?) ON CONFLICT (account, folder) DO UPDATE "
            "SET uidvalidity=excluded.uidvalidity, uidnext=excluded.uidnext, "
            "highestmodseq=excluded.highestmodseq",
            (account, folder, st.uidvalidity, st.uidnext, st.highestmodseq),
        )

    def claim(self, account: str, folder: str, uidvalidity: int, uid: int) -> bool:
        """Record the message as announced; False if it already was."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO notified VALUES (?,?,?,?,?)",
            (account, folder, uidvalidity, uid, time.time()),
        )
        if cur.rowcount and uid % 100 == 0:
            self._trim(account, folder)
        return bool(cur.rowcount)

    def is_claimed(self, account: str, folder: str, uidvalidity: int, uid: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM notified WHERE account=? AND folder=? AND uidvalidity=? AND uid=?",
            (account, folder, uidvalidity, uid),
        ).fetchone()
        return row is not None

    def _trim(self, account: str, folder: str) -> None:
        """Keep the newest ``keep`` keys per folder; older UIDs are below the folder's
        UIDNEXT cursor anyway, so the cursor alone keeps them from coming back."""
        self._db.execute(
            "DELETE FROM notified WHERE account=? AND folder=? AND rowid NOT IN "
            "(SELECT rowid FROM notified WHERE account=? AND folder=? "
            "ORDER BY uidvalidity DESC, uid DESC LIMIT ?)",
            (account, folder, account, folder, self.keep),
        )

    def notified_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM notified").fetchone()[0])

    def save_download(self, key: tuple[str, str, int, int], path: str, partial: bool) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO download VALUES (?,?,?,?,?,?)", (*key, path, int(partial))
        )

    def download(self, key: tuple[str, str, int, int]) -> tuple[str, bool] | None:
        row = self._db.execute(
            "SELECT path, partial FROM download WHERE account=? AND folder=? AND uidvalidity=? "
            "AND uid=?",
            key,
        ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))
