"""Users, mailboxes and subscriptions of the PostgreSQL store.

Changes to a user's mailbox names (create, delete, rename) lock the user row first,
so two nodes renaming in one account at once run one after the other and the
existence checks below stay true until COMMIT. PostgreSQL text cannot hold NUL, so
a name or address with one is refused (or simply not found) up front, as a name
SQLite would store but no client could have meant.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from pushmail.store.common import mailbox_name
from pushmail.store.interfaces import (
    DEFAULT_MAILBOXES,
    HIERARCHY_DELIMITER,
    AlreadyExists,
    Conflict,
    Mailbox,
    NotFound,
    StoreError,
    User,
)
from pushmail.store.pg_base import PgBase

_MAX_UIDVALIDITY = 0xFFFFFFFF

_MAILBOX_COLS = """
    SELECT m.id, m.user_id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.special_use,
           EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.user_id AND s.name = m.name)
    FROM mailboxes m"""
_USER_COLS = "SELECT id, address, password_hash FROM users"


def _name(name: str) -> str:
    """``mailbox_name``, and no NUL (which PostgreSQL text cannot hold)."""
    name = mailbox_name(name)
    if "\x00" in name:
        raise Conflict(f"invalid mailbox name {name!r}")
    return name


def _mailbox(row: Sequence[Any]) -> Mailbox:
    return Mailbox(
        int(row[0]),
        int(row[1]),
        row[2],
        int(row[3]),
        int(row[4]),
        int(row[5]),
        row[6],
        bool(row[7]),
    )


def _user(row: Sequence[Any] | None) -> User | None:
    return None if row is None else User(int(row[0]), row[1], row[2])


class PgMailboxes(PgBase):
    # -- users ------------------------------------------------------------------
    def create_user(self, address: str, password_hash: str) -> User:
        address = address.lower()
        if "\x00" in address:
            raise StoreError("invalid address")

        def run(conn: Connection) -> int:
            row = conn.execute(
                "INSERT INTO users (address, password_hash) VALUES (%s, %s) "
                "ON CONFLICT (address) DO NOTHING RETURNING id",
                (address, password_hash),
            ).fetchone()
            if row is None:
                raise AlreadyExists(f"user {address} exists")
            self._default_mailboxes(conn, int(row[0]))
            return int(row[0])

        return User(self._write(run), address, password_hash)

    def _default_mailboxes(self, conn: Connection, user_id: int) -> None:
        for name, special_use in DEFAULT_MAILBOXES:
            self._insert_one_mailbox(conn, user_id, name, special_use)
            conn.execute(
                "INSERT INTO subscriptions (user_id, name) VALUES (%s, %s)", (user_id, name)
            )

    def create_users(self, users: Sequence[tuple[str, str]], update: bool = False) -> int:
        """All or nothing, in one transaction (one WAL flush)."""
        pairs = [(address.lower(), password_hash) for address, password_hash in users]
        if any("\x00" in address for address, _ in pairs):
            raise StoreError("invalid address")

        def run(conn: Connection) -> int:
            created = 0
            for address, password_hash in pairs:
                row = conn.execute(
                    "INSERT INTO users (address, password_hash) VALUES (%s, %s) "
                    "ON CONFLICT (address) DO NOTHING RETURNING id",
                    (address, password_hash),
                ).fetchone()
                if row is None:
                    if update:
                        conn.execute(
                            "UPDATE users SET password_hash = %s WHERE address = %s",
                            (password_hash, address),
                        )
                    continue
                created += 1
                self._default_mailboxes(conn, int(row[0]))
            return created

        return self._write(run) if pairs else 0

    def get_user(self, address: str) -> User | None:
        address = address.lower()
        if "\x00" in address:
            return None
        return _user(
            self._read(
                lambda conn: conn.execute(f"{_USER_COLS} WHERE address = %s", (address,)).fetchone()
            )
        )

    def get_user_by_id(self, user_id: int) -> User | None:
        return _user(
            self._read(
                lambda conn: conn.execute(f"{_USER_COLS} WHERE id = %s", (user_id,)).fetchone()
            )
        )

    def list_users(self) -> list[User]:
        rows = self._read(lambda conn: conn.execute(f"{_USER_COLS} ORDER BY address").fetchall())
        return [User(int(r[0]), r[1], r[2]) for r in rows]

    def set_password(self, address: str, password_hash: str) -> None:
        address = address.lower()

        def run(conn: Connection) -> None:
            cur = conn.execute(
                "UPDATE users SET password_hash = %s WHERE address = %s",
                (password_hash, address),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no user {address}")

        if "\x00" in address:
            raise NotFound(f"no user {address!r}")
        self._write(run)

    def delete_user(self, address: str) -> None:
        address = address.lower()

        def run(conn: Connection) -> None:
            row = conn.execute(
                "SELECT id FROM users WHERE address = %s FOR UPDATE", (address,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no user {address}")
            user_id = int(row[0])
            # Lock the mailboxes in id order before the cascade deletes them in
            # whatever order it likes: deliveries lock them in id order too.
            conn.execute(
                "SELECT id FROM mailboxes WHERE user_id = %s ORDER BY id FOR UPDATE", (user_id,)
            )
            body_ids = self._ints(
                conn,
                "SELECT DISTINCT body_id FROM messages WHERE mailbox_id IN "
                "(SELECT id FROM mailboxes WHERE user_id = %s)",
                (user_id,),
            )
            conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
            self._gc_bodies(conn, body_ids)

        if "\x00" in address:
            raise NotFound(f"no user {address!r}")
        self._write(run)

    # -- mailboxes --------------------------------------------------------------
    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        rows = self._read(
            lambda conn: conn.execute(
                f"{_MAILBOX_COLS} WHERE m.user_id = %s ORDER BY m.name", (user_id,)
            ).fetchall()
        )
        return [_mailbox(row) for row in rows]

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        if name.upper() == "INBOX":
            name = "INBOX"
        if "\x00" in name:
            return None
        row = self._read(
            lambda conn: conn.execute(
                f"{_MAILBOX_COLS} WHERE m.user_id = %s AND m.name = %s", (user_id, name)
            ).fetchone()
        )
        return None if row is None else _mailbox(row)

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        row = self._read(
            lambda conn: conn.execute(f"{_MAILBOX_COLS} WHERE m.id = %s", (mailbox_id,)).fetchone()
        )
        return None if row is None else _mailbox(row)

    @staticmethod
    def _mailbox_id(conn: Connection, user_id: int, name: str) -> int | None:
        row = conn.execute(
            "SELECT id FROM mailboxes WHERE user_id = %s AND name = %s", (user_id, name)
        ).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _lock_user(conn: Connection, user_id: int) -> None:
        row = conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
        if row is None:
            raise NotFound(f"no user {user_id}")

    @staticmethod
    def _next_uidvalidity(conn: Connection) -> int:
        """A global counter that never falls behind the clock (see SqliteStore), in
        one statement, so nodes creating mailboxes at once never share a value."""
        row = conn.execute(
            "INSERT INTO counters (name, value) VALUES ('uidvalidity', %s) "
            "ON CONFLICT (name) DO UPDATE SET value = greatest(counters.value + 1, "
            "excluded.value) RETURNING value",
            (int(time.time()),),
        ).fetchone()
        assert row is not None
        value = int(row[0])
        if value > _MAX_UIDVALIDITY:
            raise StoreError("UIDVALIDITY space exhausted")
        return value

    def _insert_mailbox(
        self, conn: Connection, user_id: int, name: str, special_use: str | None
    ) -> int:
        """Insert ``name`` after any missing parents; the caller checked it is new."""
        parts = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(parts)):
            parent = HIERARCHY_DELIMITER.join(parts[:depth])
            if self._mailbox_id(conn, user_id, parent) is None:
                self._insert_one_mailbox(conn, user_id, parent, None)
        return self._insert_one_mailbox(conn, user_id, name, special_use)

    def _insert_one_mailbox(
        self, conn: Connection, user_id: int, name: str, special_use: str | None
    ) -> int:
        row = conn.execute(
            "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (user_id, name, self._next_uidvalidity(conn), special_use),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        name = _name(name)

        def run(conn: Connection) -> int:
            self._lock_user(conn, user_id)
            if self._mailbox_id(conn, user_id, name) is not None:
                raise AlreadyExists(f"mailbox {name} exists")
            return self._insert_mailbox(conn, user_id, name, special_use)

        mailbox = self.get_mailbox_by_id(self._write(run))
        assert mailbox is not None
        return mailbox

    def delete_mailbox(self, user_id: int, name: str) -> None:
        name = _name(name)
        if name == "INBOX":
            raise Conflict("INBOX cannot be deleted")

        def run(conn: Connection) -> None:
            self._lock_user(conn, user_id)
            mailbox_id = self._mailbox_id(conn, user_id, name)
            if mailbox_id is None:
                raise NotFound(f"no mailbox {name}")
            self._lock_mailboxes(conn, [mailbox_id])
            body_ids = self._ints(
                conn, "SELECT DISTINCT body_id FROM messages WHERE mailbox_id = %s", (mailbox_id,)
            )
            conn.execute("DELETE FROM mailboxes WHERE id = %s", (mailbox_id,))
            self._gc_bodies(conn, body_ids)

        self._write(run)

    def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        old, new = _name(old), _name(new)

        def run(conn: Connection) -> None:
            self._lock_user(conn, user_id)
            old_id = self._mailbox_id(conn, user_id, old)
            if old_id is None:
                raise NotFound(f"no mailbox {old}")
            if self._mailbox_id(conn, user_id, new) is not None:
                raise AlreadyExists(f"mailbox {new} exists")
            if old == "INBOX":
                # RFC 3501 §6.3.5: INBOX's messages move, INBOX stays (children do not).
                new_id = self._insert_mailbox(conn, user_id, new, None)
                uids = self._ints(conn, "SELECT uid FROM messages WHERE mailbox_id = %s", (old_id,))
                self._copy(conn, old_id, uids, new_id, True)
                return
            if new.startswith(old + HIERARCHY_DELIMITER):
                raise Conflict("cannot rename a mailbox into itself")
            self._rename_tree(conn, user_id, old, new)

        self._write(run)

    def _rename_tree(self, conn: Connection, user_id: int, old: str, new: str) -> None:
        prefix = old + HIERARCHY_DELIMITER
        rows = conn.execute(
            "SELECT id, name FROM mailboxes WHERE user_id = %s AND (name = %s OR "
            "starts_with(name, %s))",
            (user_id, old, prefix),
        ).fetchall()
        moves = [(new + str(name)[len(old) :], int(mailbox_id)) for mailbox_id, name in rows]
        for target, _ in moves:
            if self._mailbox_id(conn, user_id, target) is not None:
                raise AlreadyExists(f"mailbox {target} exists")
        parts = new.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(parts)):
            parent = HIERARCHY_DELIMITER.join(parts[:depth])
            if parent != old and self._mailbox_id(conn, user_id, parent) is None:
                self._insert_one_mailbox(conn, user_id, parent, None)
        with conn.cursor() as cur:
            cur.executemany("UPDATE mailboxes SET name = %s WHERE id = %s", moves)

    def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        if name.upper() == "INBOX":
            name = "INBOX"
        if "\x00" in name:
            raise Conflict(f"invalid mailbox name {name!r}")

        def run(conn: Connection) -> None:
            if subscribed:
                conn.execute(
                    "INSERT INTO subscriptions (user_id, name) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (user_id, name),
                )
            else:
                conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = %s AND name = %s", (user_id, name)
                )

        self._write(run)

    def subscriptions(self, user_id: int) -> list[str]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT name FROM subscriptions WHERE user_id = %s ORDER BY name", (user_id,)
            ).fetchall()
        )
        return [str(row[0]) for row in rows]
