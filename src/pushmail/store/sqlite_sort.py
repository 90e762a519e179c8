"""The SQLite store's SORT/THREAD keys (``sortkeys`` table, schema version 5): one
query for a mailbox (or some of its messages); texts without keys (stored before
the table existed, or keys of an older ``KEYS_VERSION``) get them computed from
their header and stored, once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection

from pushmail.store.interfaces import SortEntry, SortKeys
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
_SELECT = (
    "SELECT m.uid, m.body_id, m.internaldate, m.size, s.version, "
    + ", ".join("s." + c.strip() for c in COLUMNS.split(","))
    + " FROM messages m LEFT JOIN sortkeys s ON s.body_id = m.body_id WHERE m.mailbox_id = ?"
)


class SqliteSortKeys(SqliteBase):
    """``Store.sort_keys`` for SQLite."""

    def sort_keys(
        self, mailbox_id: int, uids: Collection[int] | None = None
    ) -> dict[int, SortEntry]:
        if uids is None:
            rows = self._conn.execute(_SELECT, (mailbox_id,)).fetchall()
        else:
            rows = self._conn.execute(
                _SELECT + " AND m.uid IN (SELECT value FROM json_each(?))",
                (mailbox_id, json.dumps([int(u) for u in uids])),
            ).fetchall()
        out: dict[int, SortEntry] = {}
        missing: dict[int, list[tuple[int, int, int]]] = {}  # body_id -> (uid, date, size)
        for row in rows:
            if row[4] != KEYS_VERSION:
                missing.setdefault(int(row[1]), []).append((int(row[0]), row[2], row[3]))
                continue
            out[int(row[0])] = SortEntry(from_row(tuple(row[5:])), row[2], row[3])
        if missing:
            keys = self._fill_sort_keys(list(missing))
            for body_id, messages in missing.items():
                for uid, date, size in messages:
                    out[uid] = SortEntry(keys[body_id], date, size)
        return out

    def _fill_sort_keys(self, body_ids: list[int]) -> dict[int, SortKeys]:
        """Compute the keys of these texts, and keep them if this connection may
        write (a failure to keep them only costs the next SORT)."""
        computed: dict[int, SortKeys] = {}
        for body_id in body_ids:
            got = self._conn.execute("SELECT raw FROM bodies WHERE id = ?", (body_id,)).fetchone()
            computed[body_id] = extract(bytes(got[0]) if got is not None else b"")
        try:
            with self._write(durable=False) as conn:
                conn.executemany(_UPSERT, [upsert_params(b, k) for b, k in computed.items()])
        except sqlite3.OperationalError:
            pass
        return computed
