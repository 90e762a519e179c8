"""``pushmail backup`` while a real server takes an LMTP stream, then ``pushmail
restore``: every message acknowledged before the backup started is in the copy."""

from __future__ import annotations

import json
import re
import smtplib
import threading
import time
from pathlib import Path

from e2e_server import Server
from test_push_e2e import message

from pushmail.store.sqlite import SqliteStore


def _subjects(data_dir: Path, address: str = "alice@example.org") -> set[str]:
    store = SqliteStore(data_dir / "pushmail.sqlite3")
    try:
        user = store.get_user(address)
        assert user is not None
        box = store.get_mailbox(user.id, "INBOX")
        assert box is not None
        raws = [store.get_raw(box.id, m.uid) for m in store.list_messages(box.id)]
    finally:
        store.close()
    return {m.group(1).decode() for r in raws if (m := re.search(rb"Subject: (\S+)", r))}


def _uidvalidity(data_dir: Path) -> int:
    store = SqliteStore(data_dir / "pushmail.sqlite3")
    try:
        user = store.get_user("alice@example.org")
        assert user is not None
        box = store.get_mailbox(user.id, "INBOX")
        assert box is not None
        return box.uidvalidity
    finally:
        store.close()


class Stream(threading.Thread):
    """LMTP deliveries one after another on one connection; ``acked`` grows by a
    subject only after its 250."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with smtplib.LMTP("127.0.0.1", self.port, timeout=20) as lm:
                n = 0
                while not self.stop.is_set():
                    subject = f"m{n}"
                    lm.sendmail("s@example.com", ["alice@example.org"], message(subject))
                    self.acked.append(subject)  # sendmail returned: 250 for alice
                    n += 1
        except BaseException as e:  # shown by the test
            self.error = e


def test_backup_during_lmtp_stream_restores_every_acknowledged_message(
    server: Server, tmp_path: Path
) -> None:
    stream = Stream(server.lmtp)
    stream.start()
    deadline = time.monotonic() + 30
    while len(stream.acked) < 20 and time.monotonic() < deadline and stream.is_alive():
        time.sleep(0.02)
    before = list(stream.acked)  # acknowledged before the backup starts
    backup = server.cli("backup", str(tmp_path / "bk"))
    after_backup = len(stream.acked)
    stream.stop.set()
    stream.join(30)
    assert stream.error is None, stream.error
    assert backup.returncode == 0, backup.stderr
    assert len(before) >= 20 and after_backup > len(before) - 1
    print(f"acked before the backup: {len(before)}, when it ended: {after_backup}")

    manifest = json.loads((tmp_path / "bk" / "pushmail-backup.json").read_text())
    names = {f["name"] for f in manifest["files"]}
    assert {"pushmail.sqlite3", "tls-cert.pem", "tls-key.pem"} <= names
    assert (tmp_path / "bk" / "tls-key.pem").stat().st_mode & 0o077 == 0

    restored = tmp_path / "restored"
    r = server.cli_at(restored, "restore", str(tmp_path / "bk"))
    assert r.returncode == 0, r.stderr
    got = _subjects(restored)
    missing = [s for s in before if s not in got]
    assert not missing, f"acknowledged before the backup but not restored: {missing}"
    # UIDs above the backup's will be given out again: clients must see a new UIDVALIDITY.
    assert _uidvalidity(restored) > _uidvalidity(server.data_dir)
    # The restored directory serves: users and passwords came along.
    users = server.cli_at(restored, "user", "list")
    assert users.stdout.split() == [b"alice@example.org", b"bob@example.org"]


def test_restore_refuses_live_data_and_damaged_backups(server: Server, tmp_path: Path) -> None:
    assert server.cli("backup", str(tmp_path / "bk")).returncode == 0
    # never over an existing data directory
    r = server.cli("restore", str(tmp_path / "bk"))
    assert r.returncode != 0 and b"not empty" in r.stderr
    # never into a non-empty destination
    r = server.cli("backup", str(tmp_path / "bk"))
    assert r.returncode != 0 and b"not empty" in r.stderr
    # a damaged file is found before anything is written
    db = tmp_path / "bk" / "pushmail.sqlite3"
    data = db.read_bytes()
    db.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    r = server.cli_at(tmp_path / "new", "restore", str(tmp_path / "bk"))
    assert r.returncode != 0 and b"does not match" in r.stderr
    assert not (tmp_path / "new").exists()
