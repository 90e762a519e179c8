"""The push database in SQLite: a file of its own (``<data_dir>/push.sqlite3``), apart
from the mail store, for two reasons: the mail store's schema stays the store's
business, and alert bookkeeping (a queue written and deleted on every delivery)
never contends with the store's single writer. One server process runs the push
engine with it (see ``db.py`` for the protocol and ``db_postgres.py`` for several
nodes).

Rows claimed by a sender are marked ``inflight``; a crash leaves them so, and
opening the file puts them back (so an alert may, rarely, be sent twice; never
lost). The VAPID key stays a file beside the database, as before there was a
protocol (backed up with the data directory).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from pushmail.push.alert import Alert
from pushmail.push.db import (
    ALL_DEVICES,
    DEVICE_COLS,
    VAPID_FILE,
    Cursor,
    Device,
    NewAlert,
    QueuedAlert,
    device_row,
    dump_alert,
)
from pushmail.push.rules import Rules

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL DEFAULT '',
    auth TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    last_sent REAL NOT NULL DEFAULT 0,
    UNIQUE (user_id, endpoint)
);
CREATE TABLE IF NOT EXISTS rules (
    user_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS cursors (
    user_id INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL,
    last_uid INTEGER NOT NULL,
    last_modseq INTEGER NOT NULL,
    PRIMARY KEY (user_id, mailbox_id)
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    alert TEXT NOT NULL,
    created REAL NOT NULL,
    not_before REAL NOT NULL,
    deadline REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    inflight INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (inflight, not_before);
"""


class SqlitePushDB:
    """``db.PushDB`` on one SQLite file (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        new = not path.exists()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if new:
            os.chmod(path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._db.execute("UPDATE queue SET inflight = 0 WHERE inflight = 1")

    def close(self) -> None:
        self._db.close()

    # -- the server's secret ------------------------------------------------------------

    def secret(self) -> bytes:
        """32 random bytes made on first use: keys opaque account ids and sessions."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        if row is not None:
            return bytes(row[0])
        value = secrets.token_bytes(32)
        self._db.execute("INSERT INTO meta (key, value) VALUES ('secret', ?)", (value,))
        return value

    def vapid_pem(self, make: Callable[[], bytes]) -> bytes:
        """The file ``vapid-private.pem`` beside the database, made (0600) if missing."""
        path = self._path.parent / VAPID_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(make())
        return path.read_bytes()

    # -- devices ------------------------------------------------------------------------

    def add_device(self, device: Device) -> Device:
        """Add a device (``device.id`` is ignored), or update the keys of the user's
        device with the same endpoint (a browser re-subscribing). Returns it stored.
        A webhook without a secret is refused: its alerts could be forged by anyone."""
        if device.kind == "webhook" and not device.secret:
            raise ValueError("a webhook needs a secret")
        self._db.execute(
            "INSERT INTO devices (user_id, kind, endpoint, p256dh, auth, secret, label, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, endpoint) DO UPDATE SET"
            " kind = excluded.kind, p256dh = excluded.p256dh, auth = excluded.auth,"
            " secret = excluded.secret, label = excluded.label",
            (
                device.user_id,
                device.kind,
                device.endpoint,
                device.p256dh,
                device.auth,
                device.secret,
                device.label,
                device.created,
            ),
        )
        row = self._db.execute(
            f"SELECT {DEVICE_COLS} FROM devices WHERE user_id = ? AND endpoint = ?",
            (device.user_id, device.endpoint),
        ).fetchone()
        return device_row(row)

    def devices(self, user_id: int | None = None) -> list[Device]:
        """The user's devices (everyone's with None), oldest first."""
        if user_id is None:
            rows = self._db.execute(f"SELECT {DEVICE_COLS} FROM devices ORDER BY id")
        else:
            rows = self._db.execute(
                f"SELECT {DEVICE_COLS} FROM devices WHERE user_id = ? ORDER BY id", (user_id,)
            )
        return [device_row(r) for r in rows]

    def device(self, device_id: int) -> Device | None:
        row = self._db.execute(
            f"SELECT {DEVICE_COLS} FROM devices WHERE id = ?", (device_id,)
        ).fetchone()
        return device_row(row) if row else None

    def remove_device(self, device_id: int) -> bool:
        """Remove a device with its rules and queued alerts; False if there was none."""
        with self._tx():
            self._db.execute("DELETE FROM rules WHERE device_id = ?", (device_id,))
            cur = self._db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
        return cur.rowcount > 0

    # -- rules --------------------------------------------------------------------------

    def rules(self, user_id: int, device_id: int = ALL_DEVICES) -> Rules | None:
        """The stored rules; None when the user (or device) has none of its own."""
        row = self._db.execute(
            "SELECT json FROM rules WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        ).fetchone()
        return Rules.from_json(json.loads(row[0])) if row else None

    def set_rules(self, user_id: int, rules: Rules | None, device_id: int = ALL_DEVICES) -> None:
        """Store rules, or with None drop them (back to defaults / the user's rules)."""
        if rules is None:
            self._db.execute(
                "DELETE FROM rules WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
            return
        self._db.execute(
            "INSERT OR REPLACE INTO rules (user_id, device_id, json) VALUES (?, ?, ?)",
            (user_id, device_id, json.dumps(rules.to_json())),
        )

    # -- cursors: the last message alerted per mailbox ----------------------------------

    def cursor(self, user_id: int, mailbox_id: int) -> Cursor | None:
        """(last UID, MODSEQ then) up to which new mail was looked at, or None."""
        row = self._db.execute(
            "SELECT last_uid, last_modseq FROM cursors WHERE user_id = ? AND mailbox_id = ?",
            (user_id, mailbox_id),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def set_cursor(self, user_id: int, mailbox_id: int, last_uid: int, last_modseq: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?)",
            (user_id, mailbox_id, last_uid, last_modseq),
        )

    def drop_cursor(self, user_id: int, mailbox_id: int) -> None:
        self._db.execute(
            "DELETE FROM cursors WHERE user_id = ? AND mailbox_id = ?", (user_id, mailbox_id)
        )

    def advance(
        self,
        user_id: int,
        mailbox_id: int,
        seen: Cursor | None,
        new: Cursor,
        alerts: Sequence[NewAlert],
        now: float,
        hold: float,
        lifetime: float,
    ) -> bool:
        with self._tx():
            if self.cursor(user_id, mailbox_id) != seen:
                return False
            self.set_cursor(user_id, mailbox_id, *new)
            for a in alerts:
                self._enqueue(a.device_id, a.topic, a.alert, now, hold, lifetime, True)
        return True

    # -- the queue ----------------------------------------------------------------------

    def enqueue(
        self,
        device_id: int,
        topic: str,
        alert: Alert,
        now: float,
        hold: float,
        lifetime: float,
        rate_limited: bool = True,
    ) -> None:
        """Queue ``alert``, merging it into a not-yet-sent alert of the same device and
        topic (so a burst becomes one alert). A new alert waits ``hold`` seconds for
        others to merge and is given up ``lifetime`` seconds after it was made."""
        with self._tx():
            self._enqueue(device_id, topic, alert, now, hold, lifetime, rate_limited)

    def _enqueue(
        self,
        device_id: int,
        topic: str,
        alert: Alert,
        now: float,
        hold: float,
        lifetime: float,
        rate_limited: bool,
    ) -> None:
        """``enqueue`` inside a transaction."""
        row = self._db.execute(
            "SELECT id, alert FROM queue WHERE device_id = ? AND topic = ? AND inflight = 0",
            (device_id, topic),
        ).fetchone()
        if row is not None:
            merged = Alert.from_dict(json.loads(row[1])).merged(alert)
            self._db.execute(
                "UPDATE queue SET alert = ? WHERE id = ?", (dump_alert(merged), row[0])
            )
            return
        self._db.execute(
            "INSERT INTO queue (device_id, topic, alert, created, not_before, deadline,"
            " rate_limited) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (device_id, topic, dump_alert(alert), now, now + hold, now + lifetime, rate_limited),
        )

    def claim_due(self, now: float, min_interval: float, limit: int) -> list[QueuedAlert]:
        """Take up to ``limit`` alerts that are due and whose device was not sent to in
        the last ``min_interval`` seconds (test alerts skip that limit); at most one
        per device, marked in flight."""
        rows = self._db.execute(
            f"SELECT q.id, q.topic, q.alert, q.created, q.deadline, q.attempts, {DEVICE_COLS_D}"
            " FROM queue q JOIN devices d ON d.id = q.device_id"
            " WHERE q.inflight = 0 AND q.not_before <= ?"
            " AND (q.rate_limited = 0 OR d.last_sent + ? <= ?)"
            " ORDER BY q.not_before, q.id",
            (now, min_interval, now),
        ).fetchall()
        claimed: list[QueuedAlert] = []
        seen: set[int] = set()
        for r in rows:
            device = device_row(r[6:])
            if device.id in seen:
                continue
            seen.add(device.id)
            alert = Alert.from_dict(json.loads(r[2]))
            claimed.append(QueuedAlert(r[0], device, r[1], alert, r[3], r[4], r[5]))
            if len(claimed) >= limit:
                break
        if claimed:
            marks = ",".join("?" * len(claimed))
            self._db.execute(
                f"UPDATE queue SET inflight = 1 WHERE id IN ({marks})", [c.id for c in claimed]
            )
        return claimed

    def next_due(self, min_interval: float) -> float | None:
        """The earliest time at which some queued alert may be sent, or None."""
        row = self._db.execute(
            "SELECT MIN(CASE WHEN q.rate_limited = 0 THEN q.not_before"
            " ELSE MAX(q.not_before, d.last_sent + ?) END)"
            " FROM queue q JOIN devices d ON d.id = q.device_id WHERE q.inflight = 0",
            (min_interval,),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def sent(self, item: QueuedAlert, now: float) -> None:
        """The alert was handed over: drop it and start the device's rate limit."""
        with self._tx():
            self._db.execute("DELETE FROM queue WHERE id = ?", (item.id,))
            self._db.execute("UPDATE devices SET last_sent = ? WHERE id = ?", (now, item.device.id))

    def give_up(self, item: QueuedAlert) -> None:
        self._db.execute("DELETE FROM queue WHERE id = ?", (item.id,))

    def retry_later(self, item: QueuedAlert, when: float) -> bool:
        """Put a failed alert back to be sent at ``when``; merged into a newer alert
        for the same device and topic if one was queued meanwhile. False (and the
        alert dropped) when ``when`` is past its deadline."""
        with self._tx():
            if when > item.deadline:
                self._db.execute("DELETE FROM queue WHERE id = ?", (item.id,))
                return False
            newer = self._db.execute(
                "SELECT id, alert FROM queue WHERE device_id = ? AND topic = ? AND inflight = 0",
                (item.device.id, item.topic),
            ).fetchone()
            if newer is not None:
                merged = item.alert.merged(Alert.from_dict(json.loads(newer[1])))
                self._db.execute(
                    "UPDATE queue SET alert = ? WHERE id = ?", (dump_alert(merged), newer[0])
                )
                self._db.execute("DELETE FROM queue WHERE id = ?", (item.id,))
            else:
                self._db.execute(
                    "UPDATE queue SET inflight = 0, not_before = ?, attempts = attempts + 1"
                    " WHERE id = ?",
                    (when, item.id),
                )
        return True

    def queued(self, device_id: int | None = None) -> int:
        """How many alerts wait (for one device, or in all)."""
        if device_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM queue WHERE device_id = ?", (device_id,)
            ).fetchone()
        return int(row[0])

    def _tx(self) -> sqlite3.Connection:
        """``with self._tx():`` one IMMEDIATE transaction (sqlite3's context manager
        commits or rolls back; the explicit BEGIN is needed in autocommit mode)."""
        self._db.execute("BEGIN IMMEDIATE")
        return self._db


DEVICE_COLS_D = ", ".join("d." + c.strip() for c in DEVICE_COLS.split(","))
