"""``pushmail alerts …`` on a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushmail.cli import main
from pushmail.push.db_sqlite import SqlitePushDB


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("pw-pw-pw\n"))
    assert main(["user", "add", "alice@example.org", "--password-stdin", "--data-dir", str(d)]) == 0
    return d


def test_add_list_rules_test_remove(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dd = ["--data-dir", str(data_dir)]
    args = ["alerts", "add", "alice@example.org", "--kind", "webhook", "--secret", "x" * 20]
    assert main([*args, "--endpoint", "https://hooks.example.net/p", "--label", "ops", *dd]) == 0
    added = capsys.readouterr().out
    assert added.startswith("device ") and "added for alice@example.org (webhook)" in added
    device_id = int(added.split()[1])
    assert main(["alerts", "list", "alice@example.org", *dd]) == 0
    out = capsys.readouterr().out
    assert f"{device_id}\t" in out and "https://hooks.example.net\tops" in out

    assert main(["alerts", "rules", "alice@example.org", *dd]) == 0  # none yet: said so
    assert "no rules set for alice@example.org" in capsys.readouterr().out
    rules = '{"only_from": ["boss@example.com"], "quiet_hours": {"start": "22:00", "end": "07:00"}}'
    assert main(["alerts", "rules", "alice@example.org", "--set", rules, *dd]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["only_from"] == ["boss@example.com"]
    assert main(["alerts", "rules", "alice@example.org", "--set", '{"bogus": 1}', *dd]) == 64
    assert main(["alerts", "rules", "alice@example.org", "--device", str(device_id),
                 "--set", '{"enabled": false}', *dd]) == 0  # fmt: skip
    capsys.readouterr()

    assert main(["alerts", "test", str(device_id), *dd]) == 0
    assert f"test alert queued for device {device_id}" in capsys.readouterr().out
    assert main(["alerts", "queue", *dd]) == 0
    assert capsys.readouterr().out.strip() == "1"
    db = SqlitePushDB(data_dir / "push.sqlite3")
    try:
        [item] = db.claim_due(1e12, 30.0, 10)
        assert item.alert.test and item.device.id == device_id
        assert db.rules(item.device.user_id, device_id) is not None
    finally:
        db.close()

    assert main(["alerts", "remove", str(device_id), *dd]) == 0
    assert main(["alerts", "remove", str(device_id), *dd]) == 1
    assert main(["alerts", "list", *dd]) == 0
    assert capsys.readouterr().out == ""


def test_unknown_user_and_bad_endpoint(data_dir: Path) -> None:
    dd = ["--data-dir", str(data_dir)]
    assert main(["alerts", "list", "nobody@example.org", *dd]) == 67
    assert main(["alerts", "add", "alice@example.org", "--kind", "ntfy",
                 "--endpoint", "ftp://x", *dd]) == 64  # fmt: skip
    assert main(["alerts", "add", "alice@example.org", "--kind", "webpush",
                 "--endpoint", "https://push.example/x", *dd]) == 64  # fmt: skip
