"""LIST and LSUB pattern matching (RFC 3501 §6.3.8): ``*`` matches anything, ``%``
anything but the hierarchy delimiter. Pure functions over names."""

from __future__ import annotations

import re
from collections.abc import Iterable
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


def names_with_children(all_names: Iterable[str]) -> set[str]:
    """Every name some name of ``all_names`` lies below (``a`` and ``a/b`` for
    ``a/b/c``), whether it exists or not: ``\\HasChildren`` in one pass, where a
    scan of all names per listed name made LIST of many folders quadratic."""
    parents: set[str] = set()
    for name in all_names:
        cut = name.rfind(HIERARCHY_DELIMITER)
        while cut >= 0:
            parent = name[:cut]
            if parent in parents:
                break  # and so are the levels above it
            parents.add(parent)
            cut = name.rfind(HIERARCHY_DELIMITER, 0, cut)
    return parents


def subscribed_matches(
    reference: str, patterns: tuple[str, ...], subscribed: set[str]
) -> tuple[set[str], set[str]]:
    """What LSUB and LIST (SUBSCRIBED) return for the ``subscribed`` names: those
    that match a pattern, and the hierarchy levels that match a pattern while a
    subscribed name below them does not. The second set is LSUB's ``\\Noselect``
    parents (RFC 3501 §6.3.9: ``LSUB "" a/%`` with only ``a/b/c`` subscribed gives
    ``a/b``) and RECURSIVEMATCH's CHILDINFO ("SUBSCRIBED") names (RFC 5258 §3.5)."""

    def hit(name: str) -> bool:
        return any(matches(reference, p, name) for p in patterns)

    direct = {name for name in subscribed if hit(name)}
    parents: set[str] = set()
    for name in subscribed - direct:
        levels = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(levels)):
            parent = HIERARCHY_DELIMITER.join(levels[:depth])
            if parent not in parents and hit(parent):
                parents.add(parent)
    return direct, parents
