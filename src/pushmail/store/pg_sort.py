"""The PostgreSQL store's SORT/THREAD keys (``sortkeys`` table, schema version 4),
as ``sqlite_sort``: one query for a whole mailbox; texts without keys of the
current ``KEYS_VERSION`` get them computed from their header and stored, once."""

from __future__ import annotations

from psycopg import Connection

from pushmail.store.interfaces import SortKeys
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
_COLS = ", ".join("s." + c.strip() for c in COLUMNS.split(","))


class PgSortKeys(PgBase):
    """``Store.sort_keys`` for PostgreSQL."""

    def sort_keys(self, mailbox_id: int) -> dict[int, SortKeys]:
        rows = self._read(
            lambda conn: conn.execute(
                f"SELECT m.uid, m.body_id, s.version, {_COLS} FROM messages m "
                "LEFT JOIN sortkeys s ON s.body_id = m.body_id WHERE m.mailbox_id = %s",
                (mailbox_id,),
            ).fetchall()
        )
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
        def raws(conn: Connection) -> dict[int, bytes]:
            got: dict[int, bytes] = {}
            for body_id, digest in conn.execute(
                "SELECT id, sha256 FROM bodies WHERE id = ANY(%s::bigint[])", (list(missing),)
            ).fetchall():
                got[int(body_id)] = self._blobs.get(conn, bytes(digest)) or b""
            return got

        texts = self._read(raws)
        computed = {b: extract(texts.get(b, b"")) for b in missing}

        def put(conn: Connection) -> None:
            for body_id, keys in computed.items():
                conn.execute(_UPSERT, upsert_params(body_id, keys))

        self._write(put, durable=False)
        return {uid: computed[b] for b, uids in missing.items() for uid in uids}
