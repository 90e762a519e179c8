"""LIST and LSUB pattern matching (RFC 3501 §6.3.8): ``*`` matches anything, ``%``
anything but the hierarchy delimiter. Pure functions over names."""

from __future__ import annotations

import re
from functools import lru_cache

from pushmail.store.interfaces import HIERARCHY_DELIMITER


@lru_cache(maxsize=256)
def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """Compile reference+pattern; INBOX matches case-insensitively."""
    full = reference + pattern if not pattern.startswith(HIERARCHY_DELIMITER) else pattern
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(HIERARCHY_DELIMITER)}]*")
        else:
            out.append(re.escape(ch))
    body = "".join(out)
    if full[:5].upper() == "INBOX":
        body = "(?i:" + "".join(out[:5]) + ")" + "".join(out[5:])
    return re.compile(body + r"\Z", re.DOTALL)


def matches(reference: str, pattern: str, name: str) -> bool:
    return pattern_regex(reference, pattern).match(name) is not None


def has_children(name: str, all_names: set[str] | list[str]) -> bool:
    prefix = name + HIERARCHY_DELIMITER
    return any(n.startswith(prefix) for n in all_names)
