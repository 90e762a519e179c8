"""METADATA entries (RFC 5464) on the SQLite store (``metadata`` table, schema
version 7). A change is checked against the user's entry limit inside the write
transaction (one writer at a time), so it is applied whole or not at all."""

from __future__ import annotations

from collections.abc import Sequence

from pushmail.store.sqlite_base import SqliteBase

_WHERE = "user_id = ? AND coalesce(mailbox_id, 0) = ?"


class SqliteMetadata(SqliteBase):
    """``get_metadata``/``set_metadata`` of ``interfaces.Store``."""

    def get_metadata(self, user_id: int, mailbox_id: int | None) -> dict[str, bytes]:
        rows = self._conn.execute(
            f"SELECT name, value FROM metadata WHERE {_WHERE}", (user_id, mailbox_id or 0)
        ).fetchall()
        return {str(r[0]): bytes(r[1]) for r in rows}

    def set_metadata(
        self,
        user_id: int,
        mailbox_id: int | None,
        changes: Sequence[tuple[str, bytes | None]],
        max_entries: int,
    ) -> bool:
        with self._write() as conn:
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
                (total,) = conn.execute(
                    "SELECT count(*) FROM metadata WHERE user_id = ?", (user_id,)
                ).fetchone()
                removed = sum(1 for n, kept in final.items() if not kept and n in have)
                if int(total) + added - removed > max_entries:
                    return False
            for name, value in changes:
                conn.execute(
                    f"DELETE FROM metadata WHERE {_WHERE} AND name = ?",
                    (user_id, mailbox_id or 0, name),
                )
                if value is not None:
                    conn.execute(
                        "INSERT INTO metadata (user_id, mailbox_id, name, value) "
                        "VALUES (?, ?, ?, ?)",
                        (user_id, mailbox_id, name, value),
                    )
        return True
