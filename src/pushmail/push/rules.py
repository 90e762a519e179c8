"""Which mail notifies: a user's rules, for all their devices or for one device.

Rules are evaluated when the alert is made (right after delivery), not when it is
sent: "mute for an hour" silences mail that arrives in that hour, and a message that
arrives in quiet hours is not announced later either (the IMAP client still sees it).

A device is alerted for a message only if the user's rules *and* that device's own
rules (if it has any) allow it, so "mute everything" and "not this phone" combine as
one expects. Rules are plain JSON for the HTTP API and the queue database; ``from_json``
checks every field, so a malformed rule from a user is a ``ValueError`` with a message,
never something stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALL_FOLDERS = "*"
MAX_LIST = 200  # entries of only_from / folders
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_KEYS = ("enabled", "muted_until", "quiet_hours", "timezone", "only_from", "folders")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the user's time zone; ``start > end`` crosses midnight
    (22:00–07:00). ``start == end`` is an empty window."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}


@dataclass(frozen=True, slots=True)
class Rules:
    """One rule set. ``only_from`` holds addresses (``boss@example.com``) and
    domains (``example.com``, which also matches its subdomains); empty means
    everyone. ``folders`` holds mailbox names, ``*`` for all."""

    enabled: bool = True
    muted_until: datetime | None = None  # aware, UTC
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"
    only_from: tuple[str, ...] = ()
    folders: tuple[str, ...] = ("INBOX",)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _zone(self.timezone))
        if self.muted_until is not None and self.muted_until.tzinfo is None:
            raise ValueError("muted_until needs a time zone")

    def allows_now(self, now: datetime) -> bool:
        """The time-based rules: switched on, not muted, not in quiet hours."""
        if not self.enabled:
            return False
        if self.muted_until is not None and now < self.muted_until:
            return False
        if self.quiet_hours is not None:
            local = now.astimezone(self._zone).time().replace(tzinfo=None)
            if self.quiet_hours.contains(local):
                return False
        return True

    def allows_message(self, mailbox: str, sender: str | None) -> bool:
        """The per-message rules: the folder, and the sender (``None`` when the
        message has no usable From address; it passes only an empty only_from)."""
        if ALL_FOLDERS not in self.folders and mailbox not in self.folders:
            return False
        if not self.only_from:
            return True
        return sender is not None and sender_matches(sender, self.only_from)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "muted_until": self.muted_until.isoformat() if self.muted_until else None,
            "quiet_hours": self.quiet_hours.to_json() if self.quiet_hours else None,
            "timezone": self.timezone,
            "only_from": list(self.only_from),
            "folders": list(self.folders),
        }

    @classmethod
    def from_json(cls, data: Any) -> Rules:
        """Build and check rules from JSON; keys left out keep their defaults."""
        if not isinstance(data, dict):
            raise ValueError("rules must be a JSON object")
        unknown = set(data) - set(_KEYS)
        if unknown:
            raise ValueError(f"unknown rule keys: {', '.join(sorted(unknown))}")
        kw: dict[str, Any] = {}
        if "enabled" in data:
            if not isinstance(data["enabled"], bool):
                raise ValueError("enabled must be true or false")
            kw["enabled"] = data["enabled"]
        if data.get("muted_until") is not None:
            kw["muted_until"] = _parse_instant(data["muted_until"])
        if data.get("quiet_hours") is not None:
            kw["quiet_hours"] = _parse_quiet(data["quiet_hours"])
        if "timezone" in data:
            kw["timezone"] = _str(data["timezone"], "timezone")
        if "only_from" in data:
            kw["only_from"] = tuple(_normalise_sender(s) for s in _list(data, "only_from"))
        if "folders" in data:
            kw["folders"] = tuple(_str(s, "folder") for s in _list(data, "folders"))
        return cls(**kw)


def sender_matches(sender: str, patterns: Iterable[str]) -> bool:
    """True if ``sender`` (an address) is one of ``patterns`` or in one of their
    domains (a domain pattern also covers its subdomains). Case-insensitive."""
    sender = sender.strip().lower()
    domain = sender.rpartition("@")[2]
    for pattern in patterns:
        if "@" in pattern:
            if sender == pattern:
                return True
        elif domain == pattern or domain.endswith("." + pattern):
            return True
    return False


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 320:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise ValueError(f"{key} must be a list of at most {MAX_LIST} strings")
    return value


def _normalise_sender(value: Any) -> str:
    text = _str(value, "only_from entry").strip().lower().lstrip("@")
    if not text or any(c.isspace() or c in "<>,;\"'" for c in text) or text.count("@") > 1:
        raise ValueError(f"not an address or domain: {value!r}")
    return text


def _parse_instant(value: Any) -> datetime:
    try:
        instant = datetime.fromisoformat(_str(value, "muted_until"))
    except ValueError:
        raise ValueError(f"muted_until is not an ISO 8601 time: {value!r}") from None
    if instant.tzinfo is None:
        raise ValueError("muted_until needs a time zone offset (e.g. Z or +02:00)")
    return instant


def _parse_quiet(value: Any) -> QuietHours:
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise ValueError('quiet_hours must be {"start": "HH:MM", "end": "HH:MM"}')
    times = []
    for key in ("start", "end"):
        m = _HHMM.match(value[key]) if isinstance(value[key], str) else None
        if m is None:
            raise ValueError(f"quiet_hours.{key} must be HH:MM (24 h)")
        times.append(time(int(m.group(1)), int(m.group(2))))
    return QuietHours(times[0], times[1])
