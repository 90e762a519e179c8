"""Rules, VIPs, quiet hours, mute and durations, without a server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pushmail.client.rules import (
    MessageInfo,
    decide,
    in_quiet_hours,
    parse_duration,
    parse_quiet_hours,
    read_mute,
    write_mute,
)
from pushmail.client.settings import Account, Rule, WatchConfig

NOON = dt.datetime(2025, 6, 2, 12, 0).astimezone()
NIGHT = dt.datetime(2025, 6, 2, 23, 30).astimezone()


def _config(**kw: object) -> WatchConfig:
    return WatchConfig(Path("/nonexistent"), (Account("a", "h", "u"),), **kw)  # type: ignore[arg-type]


def _msg(sender: str = "x@example.net", subject: str = "s", **kw: object) -> MessageInfo:
    return MessageInfo("a", "INBOX", 1, 1, from_=sender, subject=subject, **kw)  # type: ignore[arg-type]


def test_first_matching_rule_wins_and_default_applies() -> None:
    c = _config(
        rules=(Rule("ignore", list_id="*lists.example*"), Rule("notify", from_="boss@*")),
        default_action="ignore",
    )
    assert decide(c, _msg("Boss <boss@work.example>"), NOON, None).notify
    assert (
        decide(c, _msg("boss@work.example", list_id="<dev.lists.example>"), NOON, None).reason
        == "ignored"
    )
    assert decide(c, _msg("other@work.example"), NOON, None).reason == "ignored"


def test_vip_beats_rules_and_quiet_hours_but_not_mute() -> None:
    c = _config(vip=("*@family.example",), default_action="ignore", quiet_hours=("22:00-07:00",))
    mum = _msg("Mum <mum@family.example>")
    assert decide(c, mum, NIGHT, None).reason == "vip"
    assert decide(c, mum, NIGHT, NIGHT + dt.timedelta(hours=1)).reason == "muted"
    assert decide(c, mum, NIGHT, NIGHT - dt.timedelta(hours=1)).notify
    plain = _config(quiet_hours=("22:00-07:00",))
    assert decide(plain, _msg(), NIGHT, None).reason == "quiet-hours"
    assert decide(plain, _msg(), NOON, None).notify


def test_quiet_hours_spans() -> None:
    assert in_quiet_hours(("22:00-07:00",), NIGHT)
    assert not in_quiet_hours(("22:00-07:00",), NOON)
    assert in_quiet_hours(("11:00-13:00",), NOON)
    assert not in_quiet_hours(("12:01-13:00",), NOON)
    with pytest.raises(ValueError):
        parse_quiet_hours("25:00-07:00")


def test_durations() -> None:
    assert parse_duration("2h") == dt.timedelta(hours=2)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("45s") == dt.timedelta(seconds=45)
    for bad in ("", "2", "2x", "h2", "2h junk"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_mute_file_round_trip(tmp_path: Path) -> None:
    assert read_mute(tmp_path) is None
    write_mute(tmp_path, NOON)
    assert read_mute(tmp_path) == NOON
    write_mute(tmp_path, None)
    assert read_mute(tmp_path) is None
    (tmp_path / "mute.json").write_text("{not json")
    assert read_mute(tmp_path) is None
