"""Value types of the IMAP protocol core.

They check themselves on construction (design.md rule 5): a value that exists is valid,
so no layer above has to re-validate. All are frozen and slotted; they are shared
freely between sessions and never mutated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pushmail.imap.errors import ProtocolError

# The system flags of RFC 3501 §2.3.2, in their canonical spelling.
SYSTEM_FLAGS: frozenset[str] = frozenset(
    {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent"}
)
_SYSTEM_BY_LOWER = {f.lower(): f for f in SYSTEM_FLAGS}


def canonical_flag(flag: str) -> str:
    """Return ``flag`` in canonical case: system flags are case-insensitive."""
    if flag.startswith("\\"):
        return _SYSTEM_BY_LOWER.get(flag.lower(), flag)
    return flag


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or SASL response: it never shows in a repr or a log."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True, slots=True)
class SeqRange:
    """One element of a sequence set: ``start:end``; ``None`` stands for ``*``."""

    start: int | None
    end: int | None

    def __post_init__(self) -> None:
        for v in (self.start, self.end):
            if v is not None and v < 1:
                raise ProtocolError("sequence numbers start at 1")

    def bounds(self, largest: int) -> tuple[int, int]:
        """Both ends with ``*`` replaced by ``largest``, low end first."""
        a = largest if self.start is None else self.start
        b = largest if self.end is None else self.end
        return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """An IMAP ``sequence-set`` (RFC 3501 §9), or ``$`` (RFC 5182 SEARCHRES)."""

    ranges: tuple[SeqRange, ...]
    saved: bool = False  # the ``$`` marker: the result of the last SEARCH SAVE

    def __post_init__(self) -> None:
        if not self.ranges and not self.saved:
            raise ProtocolError("empty sequence set")

    def contains(self, n: int, largest: int) -> bool:
        for r in self.ranges:
            lo, hi = r.bounds(largest)
            if lo <= n <= hi:
                return True
        return False

    def iter_within(self, largest: int) -> Iterator[int]:
        """Each number in the set that is <= ``largest``, ascending, once."""
        seen: set[int] = set()
        for r in self.ranges:
            lo, hi = r.bounds(largest)
            for n in range(lo, min(hi, largest) + 1):
                seen.add(n)
        yield from sorted(seen)

    def select_from(self, values: Sequence[int], largest: int) -> list[int]:
        """The members of sorted ``values`` that fall in the set (for UID sets)."""
        out: list[int] = []
        bounds = [r.bounds(largest) for r in self.ranges]
        for v in values:
            if any(lo <= v <= hi for lo, hi in bounds):
                out.append(v)
        return out

    def encode(self) -> str:
        if self.saved:
            return "$"
        parts = []
        for r in self.ranges:
            a = "*" if r.start is None else str(r.start)
            b = "*" if r.end is None else str(r.end)
            parts.append(a if (r.start == r.end) else f"{a}:{b}")
        return ",".join(parts)

    @classmethod
    def from_ints(cls, values: Sequence[int]) -> SequenceSet:
        """A compact set for sorted, unique ``values`` (used for COPYUID, VANISHED)."""
        ranges: list[SeqRange] = []
        start = prev = None
        for v in values:
            if start is None:
                start = prev = v
            elif prev is not None and v == prev + 1:
                prev = v
            else:
                ranges.append(SeqRange(start, prev))
                start = prev = v
        if start is not None:
            ranges.append(SeqRange(start, prev))
        return cls(tuple(ranges))


@dataclass(frozen=True, slots=True)
class DateTime:
    """An IMAP ``date-time`` (always with a zone), as used by APPEND and INTERNALDATE."""

    value: datetime

    def __post_init__(self) -> None:
        if self.value.tzinfo is None:
            raise ProtocolError("date-time needs a zone")
