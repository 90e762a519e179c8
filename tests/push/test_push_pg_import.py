"""``import_push_sqlite``: what the SQLite push database held works the same from
PostgreSQL (the part of ``pushmail migrate`` that belongs to the push side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pg_testdb import scratch_database
from pushmail.push.alert import Alert
from pushmail.push.db import DB_FILE, Device
from pushmail.push.db_postgres import PostgresPushDB
from pushmail.push.db_sqlite import SqlitePushDB
from pushmail.push.pg_import import PushTargetNotEmpty, import_push_sqlite
from pushmail.push.rules import Rules


def test_devices_rules_cursors_queue_and_keys_survive_the_move(tmp_path: Path) -> None:
    import psycopg

    old = SqlitePushDB(tmp_path / DB_FILE)
    try:
        secret = old.secret()
        pem = old.vapid_pem(lambda: b"the VAPID key")
        gone = old.add_device(Device(0, 7, "webhook", "https://h.example/0", secret="s" * 20))
        phone = old.add_device(
            Device(0, 7, "webpush", "https://push.example/x", p256dh="k", auth="a", label="p")
        )
        hook = old.add_device(Device(0, 8, "webhook", "https://h.example/1", secret="t" * 20))
        assert old.remove_device(gone.id)  # ids with a gap: kept as they are
        rules = Rules.from_json({"folders": ["INBOX"]})
        old.set_rules(7, rules)
        old.set_rules(7, Rules(enabled=False), phone.id)
        old.set_cursor(7, 3, 41, 99)
        old.enqueue(hook.id, "topic", Alert("acct", "INBOX", 2, 2, 5), 1000.0, 0.0, 600.0)
        old.enqueue(phone.id, "test", Alert("acct", "INBOX", 1, 1, 1), 1000.0, 0.0, 600.0, False)
        [claimed] = old.claim_due(1000.0, 0.0, 1)  # in flight when the server stopped
    finally:
        old.close()
    with scratch_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            counts = import_push_sqlite(tmp_path / DB_FILE, conn)
            assert counts["push_devices"] == 2 and counts["push_queue"] == 2
            with pytest.raises(PushTargetNotEmpty):
                import_push_sqlite(tmp_path / DB_FILE, conn)
        new = PostgresPushDB(url)
        try:
            assert new.secret() == secret
            assert new.vapid_pem(lambda: b"another key") == pem == b"the VAPID key"
            assert new.devices() == [phone, hook]
            assert new.rules(7) == rules and new.rules(7, phone.id) == Rules(enabled=False)
            assert new.cursor(7, 3) == (41, 99)
            due = new.claim_due(1000.0, 0.0, 10)
            assert sorted((q.device.id, q.topic) for q in due) == [
                (phone.id, "test"),
                (hook.id, "topic"),
            ]
            assert claimed.id in {q.id for q in due}  # its claim did not come along
            later = new.add_device(Device(0, 9, "webhook", "https://h.example/2", secret="u" * 20))
            assert later.id > hook.id
        finally:
            new.close()


def test_a_server_that_never_ran_the_push_engine_has_nothing_to_copy(tmp_path: Path) -> None:
    import psycopg

    with scratch_database() as url, psycopg.connect(url, autocommit=True) as conn:
        assert import_push_sqlite(tmp_path / DB_FILE, conn) == {}
