"""The PostgreSQL store's SORT/THREAD keys (``sortkeys`` table, schema version 4),
as ``sqlite_sort``: one query for a mailbox (or some of its messages); texts
without keys of the current ``KEYS_VERSION`` get them computed and stored, once."""

from __future__ import annotations

from collections.abc import Collection

from psycopg import Connection

from pushmail.store.interfaces import SortEntry, SortKeys
from pushmail.store.pg_base import PgBase
from pushmail.store.sortkeys import (
    COLUMNS,
    KEYS_VERSION,
    extract,
    from_row,
    upsert_params,
    upsert_sql,
)

_UPSERT = upsert_sql("%s")
_SELECT = (
    "SELECT m.uid, m.body_id, m.internaldate, m.size, s.version, "
    + ", ".join("s." + c.strip() for c in COLUMNS.split(","))
    + " FROM messages m LEFT JOIN sortkeys s ON s.body_id = m.body_id WHERE m.mailbox_id = %s"
)


class PgSortKeys(PgBase):
    """``Store.sort_keys`` for PostgreSQL."""

    def sort_keys(
        self, mailbox_id: int, uids: Collection[int] | None = None
    ) -> dict[int, SortEntry]:
        if uids is None:
            sql, params = _SELECT, (mailbox_id,)
        else:
            sql = _SELECT + " AND m.uid = ANY(%s::bigint[])"
            params = (mailbox_id, [int(u) for u in uids])  # type: ignore[assignment]
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        out: dict[int, SortEntry] = {}
        missing: dict[int, list[tuple[int, int, int]]] = {}  # body_id -> (uid, date, size)
        for row in rows:
            if row[4] != KEYS_VERSION:
                missing.setdefault(int(row[1]), []).append((int(row[0]), row[2], row[3]))
                continue
            out[int(row[0])] = SortEntry(from_row(tuple(row[5:])), int(row[2]), int(row[3]))
        if missing:
            keys = self._fill_sort_keys(list(missing))
            for body_id, messages in missing.items():
                for uid, date, size in messages:
                    out[uid] = SortEntry(keys[body_id], int(date), int(size))
        return out

    def _fill_sort_keys(self, body_ids: list[int]) -> dict[int, SortKeys]:
        def raws(conn: Connection) -> dict[int, bytes]:
            got: dict[int, bytes] = {}
            for body_id, digest in conn.execute(
                "SELECT id, sha256 FROM bodies WHERE id = ANY(%s::bigint[])", (body_ids,)
            ).fetchall():
                got[int(body_id)] = self._blobs.get(conn, bytes(digest)) or b""
            return got

        texts = self._read(raws)
        computed = {b: extract(texts.get(b, b"")) for b in body_ids}

        def put(conn: Connection) -> None:
            for body_id, keys in computed.items():
                conn.execute(_UPSERT, upsert_params(body_id, keys))

        self._write(put, durable=False)
        return computed
