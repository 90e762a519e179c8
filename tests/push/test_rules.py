"""Each rule on its own: off, mute, quiet hours (across midnight, in time zones),
only-from (addresses, domains), folders; and the JSON checks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from pushmail.push.rules import QuietHours, Rules, sender_matches


def at(hour: int, minute: int = 0, day: int = 15) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def test_defaults_allow_inbox_mail_from_anyone() -> None:
    r = Rules()
    assert r.allows_now(at(3))
    assert r.allows_message("INBOX", "x@example.com")
    assert r.allows_message("INBOX", None)
    assert not r.allows_message("Junk", "x@example.com")


def test_off() -> None:
    assert not Rules(enabled=False).allows_now(at(12))


def test_mute_until() -> None:
    r = Rules(muted_until=at(13))
    assert not r.allows_now(at(12, 59))
    assert r.allows_now(at(13))


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(21, 59, False), (22, 0, True), (23, 59, True), (0, 0, True), (6, 59, True), (7, 0, False),
     (12, 0, False)],
)  # fmt: skip
def test_quiet_hours_across_midnight(hour: int, minute: int, quiet: bool) -> None:
    r = Rules(quiet_hours=QuietHours(time(22), time(7)))
    assert r.allows_now(at(hour, minute)) is not quiet


def test_quiet_hours_within_a_day_and_empty_window() -> None:
    lunch = Rules(quiet_hours=QuietHours(time(12), time(13)))
    assert not lunch.allows_now(at(12, 30)) and lunch.allows_now(at(13, 0))
    empty = Rules(quiet_hours=QuietHours(time(9), time(9)))
    assert empty.allows_now(at(9))


def test_quiet_hours_are_in_the_users_time_zone() -> None:
    tokyo = Rules(quiet_hours=QuietHours(time(22), time(7)), timezone="Asia/Tokyo")
    # 14:00 UTC is 23:00 in Tokyo (quiet); 23:00 UTC is 08:00 in Tokyo (not quiet).
    assert not tokyo.allows_now(at(14))
    assert tokyo.allows_now(at(23))
    ny = Rules(quiet_hours=QuietHours(time(22), time(7)), timezone="America/New_York")
    # 04:00 UTC in January is 23:00 in New York (EST, UTC-5): quiet.
    assert not ny.allows_now(at(4))
    # In July (EDT, UTC-4), 02:30 UTC is 22:30 the evening before: quiet; 11:30 is not.
    july = datetime(2024, 7, 1, 2, 30, tzinfo=UTC)
    assert not ny.allows_now(july)
    assert ny.allows_now(july + timedelta(hours=9))


def test_only_from_addresses_and_domains() -> None:
    r = Rules(only_from=("boss@example.com", "family.org"))
    assert r.allows_message("INBOX", "boss@example.com")
    assert r.allows_message("INBOX", "BOSS@Example.com")
    assert not r.allows_message("INBOX", "intern@example.com")
    assert r.allows_message("INBOX", "mum@family.org")
    assert r.allows_message("INBOX", "dad@mail.family.org")
    assert not r.allows_message("INBOX", "x@notfamily.org")
    assert not r.allows_message("INBOX", None)
    assert sender_matches("a@b.c", ["b.c"]) and not sender_matches("a@bb.c", ["b.c"])


def test_folders() -> None:
    r = Rules(folders=("INBOX", "Lists/work"))
    assert r.allows_message("Lists/work", "a@b.c")
    assert not r.allows_message("Lists", "a@b.c")
    assert Rules(folders=("*",)).allows_message("Junk", "a@b.c")


def test_json_round_trip() -> None:
    r = Rules.from_json(
        {
            "enabled": True,
            "muted_until": "2024-01-15T13:00:00+01:00",
            "quiet_hours": {"start": "22:30", "end": "06:15"},
            "timezone": "Europe/Paris",
            "only_from": ["@Example.COM", "boss@corp.example"],
            "folders": ["INBOX"],
        }
    )
    assert r.only_from == ("example.com", "boss@corp.example")
    assert r.muted_until == at(12)
    assert Rules.from_json(r.to_json()) == r
    assert Rules.from_json({}) == Rules()


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"enabled": "yes"},
        {"colour": "red"},
        {"muted_until": "tomorrow"},
        {"muted_until": "2024-01-15T13:00:00"},  # no zone
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"quiet_hours": {"start": "22:00"}},
        {"timezone": "Mars/Olympus"},
        {"only_from": "boss@example.com"},
        {"only_from": ["a b@example.com"]},
        {"only_from": ["x"] * 201},
        {"folders": [""]},
    ],
)
def test_bad_rules_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        Rules.from_json(bad)
