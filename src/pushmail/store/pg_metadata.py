"""METADATA entries (RFC 5464) on the PostgreSQL store (``metadata`` table, schema
version 6), as ``sqlite_metadata``. Nodes write in parallel, so a change first locks
the user's row: the entry count it checks cannot change before it commits."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import Connection

from pushmail.store.interfaces import NotFound
from pushmail.store.pg_base import PgBase

_WHERE = "user_id = %s AND coalesce(mailbox_id, 0) = %s"


class PgMetadata(PgBase):
    """``get_metadata``/``set_metadata`` of ``interfaces.Store``."""

    def get_metadata(self, user_id: int, mailbox_id: int | None) -> dict[str, bytes]:
        def run(conn: Connection) -> dict[str, bytes]:
            rows = conn.execute(
                f"SELECT name, value FROM metadata WHERE {_WHERE}", (user_id, mailbox_id or 0)
            ).fetchall()
            return {str(r[0]): bytes(r[1]) for r in rows}

        return self._read(run)

    def set_metadata(
        self,
        user_id: int,
        mailbox_id: int | None,
        changes: Sequence[tuple[str, bytes | None]],
        max_entries: int,
    ) -> bool:
        def run(conn: Connection) -> bool:
            if (
                conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
                is None
            ):
                raise NotFound(f"no user {user_id}")
            have = {
                str(r[0])
                for r in conn.execute(
                    f"SELECT name FROM metadata WHERE {_WHERE}", (user_id, mailbox_id or 0)
                )
            }
            final = dict.fromkeys(have, True)
            for name, value in changes:
                final[name] = value is not None
            added = sum(1 for n, kept in final.items() if kept and n not in have)
            if added:
                row = conn.execute(
                    "SELECT count(*) FROM metadata WHERE user_id = %s", (user_id,)
                ).fetchone()
                assert row is not None  # an aggregate always has a row
                removed = sum(1 for n, kept in final.items() if not kept and n in have)
                if int(row[0]) + added - removed > max_entries:
                    return False
            with conn.cursor() as cur:
                cur.executemany(
                    f"DELETE FROM metadata WHERE {_WHERE} AND name = %s",
                    [(user_id, mailbox_id or 0, name) for name, _ in changes],
                )
                cur.executemany(
                    "INSERT INTO metadata (user_id, mailbox_id, name, value) "
                    "VALUES (%s, %s, %s, %s)",
                    [(user_id, mailbox_id, n, v) for n, v in changes if v is not None],
                )
            return True

        return self._write(run)
