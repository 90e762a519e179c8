"""SORT (RFC 5256 §3, RFC 5957) over precomputed keys: sans-IO, no parsing here.

Each criterion compares one key of ``store.interfaces.SortKeys`` (strings are
already in i;unicode-casemap form); messages equal in every key keep sequence
order (§3: "ordered by sequence number"). REVERSE reverses only its own key, so
ties under it stay in ascending sequence order, as RFC 5256 §3 asks.

DATE is the Date: header in UTC, or the internal date when there is none
(§2.2); ARRIVAL the internal date; SIZE RFC822.SIZE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pushmail.imap.commands import SortCriterion
from pushmail.store.interfaces import SortKeys


@dataclass(frozen=True, slots=True)
class Item:
    """One message a SORT or THREAD orders: its number as the reply gives it
    (sequence number or UID), its sequence number for ties, and its keys."""

    number: int
    seq: int
    arrival: float  # internal date, unix seconds
    size: int
    keys: SortKeys

    @property
    def date(self) -> float:
        """The sent date (RFC 5256 §2.2), falling back to the internal date."""
        return self.arrival if self.keys.sent is None else float(self.keys.sent)


_KEYS: dict[str, Callable[[Item], object]] = {
    "ARRIVAL": lambda i: i.arrival,
    "CC": lambda i: i.keys.cc,
    "DATE": lambda i: i.date,
    "FROM": lambda i: i.keys.from_,
    "SIZE": lambda i: i.size,
    "SUBJECT": lambda i: i.keys.subject,
    "TO": lambda i: i.keys.to,
    "DISPLAYFROM": lambda i: i.keys.display_from,
    "DISPLAYTO": lambda i: i.keys.display_to,
}


def sort_items(items: Sequence[Item], criteria: Sequence[SortCriterion]) -> list[Item]:
    """``items`` in the order ``criteria`` give, ties by sequence number."""
    out = sorted(items, key=lambda i: i.seq)
    # Stable sorts from the last criterion to the first: each later pass keeps the
    # order of the earlier ones among its ties (Python keeps stability under reverse).
    for criterion in reversed(criteria):
        key = _KEYS[criterion.key]
        out.sort(key=key, reverse=criterion.reverse)  # type: ignore[arg-type]
    return out


def sequence_runs(numbers: Sequence[int]) -> bytes:
    """A sequence-set that keeps the order of ``numbers``: ascending runs become
    ``a:b`` (RFC 5267 §3.1: ALL lists the messages in sort order)."""
    parts: list[bytes] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(b"%d" % numbers[i] if i == j else b"%d:%d" % (numbers[i], numbers[j]))
        i = j + 1
    return b",".join(parts)
