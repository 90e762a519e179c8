"""Which new messages reach the user: rules, VIPs, quiet hours and mute.

Pure functions over a message's metadata and the time, so they are tested without a
server. The order of the questions is the user's priority:

1. rules (first match wins, else ``default_action``) decide whether a message matters
   at all; a VIP sender always matters;
2. mute (``pushmail watch mute 2h`` or ``mute_until``) silences everything;
3. quiet hours silence everything but VIPs.

A silenced message is still recorded as seen and logged, so it is not announced later
in a burst when the quiet hours end.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path

from pushmail.client.settings import Rule, WatchConfig
from pushmail.client.timespec import parse_quiet_hours, parse_when

__all__ = [
    "Decision",
    "MessageInfo",
    "decide",
    "parse_duration",
    "parse_quiet_hours",
    "parse_when",
    "read_mute",
    "write_mute",
]


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What the hooks are told about one new message."""

    account: str
    folder: str
    uidvalidity: int
    uid: int
    size: int = 0
    from_: str = ""
    to: str = ""
    subject: str = ""
    list_id: str = ""
    date: str = ""
    message_id: str = ""
    path: str = ""  # the downloaded copy in the Maildir, if any
    partial: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "folder": self.folder,
            "uidvalidity": self.uidvalidity,
            "uid": self.uid,
            "size": self.size,
            "from": self.from_,
            "to": self.to,
            "subject": self.subject,
            "list_id": self.list_id,
            "date": self.date,
            "message_id": self.message_id,
            "path": self.path,
            "partial": self.partial,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    notify: bool  # run the hooks
    reason: str  # "rule", "vip", "default", "ignored", "muted", "quiet-hours"
    vip: bool = False
    wanted: bool = True  # passed the rules (download it) even if silenced


def _glob(pattern: str, value: str) -> bool:
    return not pattern or fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _addr_glob(pattern: str, header: str) -> bool:
    """A rule on From/To matches the header text or any address in it."""
    if not pattern:
        return True
    if _glob(pattern, header):
        return True
    return any(_glob(pattern, addr) for _, addr in getaddresses([header]) if addr)


def rule_matches(rule: Rule, m: MessageInfo) -> bool:
    return (
        _addr_glob(rule.from_, m.from_)
        and _addr_glob(rule.to, m.to)
        and _glob(rule.subject, m.subject)
        and _glob(rule.list_id, m.list_id)
        and _glob(rule.folder, m.folder)
        and _glob(rule.account, m.account)
    )


def is_vip(vips: tuple[str, ...], m: MessageInfo) -> bool:
    return any(_addr_glob(v, m.from_) for v in vips)


def decide(
    config: WatchConfig, m: MessageInfo, now: dt.datetime, muted_until: dt.datetime | None
) -> Decision:
    """``now`` and ``muted_until`` are aware datetimes."""
    vip = is_vip(config.vip, m)
    if vip:
        wanted, reason = True, "vip"
    else:
        rule = next((r for r in config.rules if rule_matches(r, m)), None)
        action = rule.action if rule is not None else config.default_action
        wanted, reason = action == "notify", "rule" if rule is not None else "default"
    if not wanted:
        return Decision(False, "ignored", vip, wanted=False)
    mute = [t for t in (muted_until, _config_mute(config)) if t is not None]
    if any(now < t for t in mute):
        return Decision(False, "muted", vip)
    if not vip and in_quiet_hours(config.quiet_hours, now):
        return Decision(False, "quiet-hours", vip)
    return Decision(True, reason, vip)


def _config_mute(config: WatchConfig) -> dt.datetime | None:
    return parse_when(config.mute_until) if config.mute_until else None


# -------------------------------------------------------------------------- time

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def in_quiet_hours(spans: tuple[str, ...], now: dt.datetime) -> bool:
    t = now.astimezone().time().replace(tzinfo=None)
    for span in spans:
        start, end = parse_quiet_hours(span)
        if start <= end:
            if start <= t < end:
                return True
        elif t >= start or t < end:
            return True
    return False


def parse_duration(text: str) -> dt.timedelta:
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"45s"``, ``"1d"``."""
    pos, total = 0, 0.0
    text = text.strip()
    for m in _DURATION.finditer(text):
        if m.start() != pos and text[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _UNITS[m.group(2).lower()]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (e.g. 2h, 30m, 1h30m)")
    return dt.timedelta(seconds=total)


def mute_path(state_dir: Path) -> Path:
    return state_dir / "mute.json"


def write_mute(state_dir: Path, until: dt.datetime | None) -> None:
    """Written atomically; the running watcher reads it for every message."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = mute_path(state_dir)
    if until is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"until": until.isoformat()}))
    tmp.replace(path)


def read_mute(state_dir: Path) -> dt.datetime | None:
    try:
        data = json.loads(mute_path(state_dir).read_text())
        return parse_when(str(data["until"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
