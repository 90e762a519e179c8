"""The SQLite store's SORT/THREAD keys (``sortkeys`` table, schema version 5): one
query for a whole mailbox; texts without keys (stored before the table existed, or
keys of an older ``KEYS_VERSION``) get them computed from their header and stored,
once."""

from __future__ import annotations

import sqlite3

from pushmail.store.interfaces import SortKeys
from pushmail.store.sortkeys import (
    COLUMNS,
    KEYS_VERSION,
    extract,
    from_row,
    upsert_params,
    upsert_sql,
)
from pushmail.store.sqlite_base import SqliteBase

_UPSERT = upsert_sql("?")
_COLS = ", ".join("s." + c.strip() for c in COLUMNS.split(","))


class SqliteSortKeys(SqliteBase):
    """``Store.sort_keys`` for SQLite."""

    def sort_keys(self, mailbox_id: int) -> dict[int, SortKeys]:
        rows = self._conn.execute(
            f"SELECT m.uid, m.body_id, s.version, {_COLS} "
            "FROM messages m LEFT JOIN sortkeys s ON s.body_id = m.body_id "
            "WHERE m.mailbox_id = ?",
            (mailbox_id,),
        ).fetchall()
        out: dict[int, SortKeys] = {}
        missing: dict[int, list[int]] = {}  # body_id -> uids
        for row in rows:
            if row[2] != KEYS_VERSION:
                missing.setdefault(int(row[1]), []).append(int(row[0]))
                continue
            out[int(row[0])] = from_row(tuple(row[3:]))
        if missing:
            out.update(self._fill_sort_keys(missing))
        return out

    def _fill_sort_keys(self, missing: dict[int, list[int]]) -> dict[int, SortKeys]:
        """Compute the keys of the texts ``missing`` names, and keep them if this
        connection may write (a failure to keep them only costs the next SORT)."""
        computed: dict[int, SortKeys] = {}
        for body_id in missing:
            got = self._conn.execute("SELECT raw FROM bodies WHERE id = ?", (body_id,)).fetchone()
            computed[body_id] = extract(bytes(got[0]) if got is not None else b"")
        try:
            with self._write(durable=False) as conn:
                conn.executemany(_UPSERT, [upsert_params(b, k) for b, k in computed.items()])
        except sqlite3.OperationalError:
            pass
        return {uid: computed[b] for b, uids in missing.items() for uid in uids}
