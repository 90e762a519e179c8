"""Times written in the watch configuration: quiet-hours spans and mute dates.

A leaf module so that both the configuration checks (``settings``) and the rules that
apply them (``rules``) can read them without importing each other.
"""

from __future__ import annotations

import datetime as dt
import re

_HHMM = re.compile(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*\Z")


def parse_quiet_hours(text: str) -> tuple[dt.time, dt.time]:
    """``"22:00-07:00"`` → (start, end); a span may cross midnight."""
    m = _HHMM.match(text)
    if m is None:
        raise ValueError(f"quiet_hours: expected HH:MM-HH:MM, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return dt.time(h1, m1), dt.time(h2, m2)


def parse_when(text: str) -> dt.datetime:
    """An ISO date-time; without an offset it is local time."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO date-time: {text!r}") from None
    return when if when.tzinfo is not None else when.astimezone()
