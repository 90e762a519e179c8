"""What the SQLite store keeps for the extensions of issue 18 and hands out for many
messages in one query: PREVIEW (RFC 8970), EMAILID (RFC 8474), SAVEDATE (RFC 8514).
Kept apart from ``sqlite.py`` so that neither grows past a readable size; the
tables and columns are in ``sqlite_schema.py`` (versions 3 and 4)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from pushmail.store.common import email_object_id
from pushmail.store.sqlite_base import SqliteBase

_IN_UIDS = "m.uid IN (SELECT value FROM json_each(?))"


def _uid_json(uids: Iterable[int]) -> str:
    return json.dumps([int(u) for u in uids])


class SqliteStoredData(SqliteBase):
    """The batch reads of PREVIEW, EMAILID and SAVEDATE (``interfaces.Store``)."""

    def previews(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, str | None]:
        rows = self._conn.execute(
            "SELECT m.uid, p.preview FROM messages m LEFT JOIN previews p "
            f"ON p.body_id = m.body_id WHERE m.mailbox_id = ? AND {_IN_UIDS}",
            (mailbox_id, _uid_json(uids)),
        )
        return {int(uid): text for uid, text in rows}

    def email_ids(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, str]:
        rows = self._conn.execute(
            "SELECT m.uid, b.sha256 FROM messages m JOIN bodies b ON b.id = m.body_id "
            f"WHERE m.mailbox_id = ? AND {_IN_UIDS}",
            (mailbox_id, _uid_json(uids)),
        )
        return {int(uid): email_object_id(bytes(sha)) for uid, sha in rows}

    def save_dates(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, datetime | None]:
        rows = self._conn.execute(
            f"SELECT m.uid, m.savedate FROM messages m WHERE m.mailbox_id = ? AND {_IN_UIDS}",
            (mailbox_id, _uid_json(uids)),
        )
        return {
            int(uid): None if ts is None else datetime.fromtimestamp(int(ts), UTC)
            for uid, ts in rows
        }
