"""SORT (RFC 5256 §3, RFC 5957) over precomputed keys: sans-IO, no parsing here.

Each criterion compares one key of ``store.interfaces.SortKeys`` (strings are
already in i;unicode-casemap form); messages equal in every key keep sequence
order (§3: "ordered by sequence number"). REVERSE reverses only its own key, so
ties under it stay in ascending sequence order, as RFC 5256 §3 asks.

DATE is the Date: header in UTC, or the internal date when there is none
(§2.2); ARRIVAL the internal date; SIZE RFC822.SIZE.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from pushmail.imap.commands import SortCriterion
from pushmail.store.interfaces import SortKeys


class Item:
    """One message a SORT or THREAD orders: its number as the reply gives it
    (sequence number or UID), its sequence number for ties, and its keys. A plain
    slotted class: tens of thousands are made per command."""

    __slots__ = ("arrival", "date", "keys", "number", "seq", "size")

    def __init__(self, number: int, seq: int, arrival: float, size: int, keys: SortKeys) -> None:
        self.number = number
        self.seq = seq
        self.arrival = arrival  # internal date, unix seconds
        self.size = size
        self.keys = keys
        # The sent date (RFC 5256 §2.2), falling back to the internal date.
        self.date = arrival if keys.sent is None else float(keys.sent)


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


class _Rank:
    """What ``sort_items`` compares, as one object: for inserting one message into
    an order already sorted (``SortIndex.add``)."""

    __slots__ = ("reverse", "seq", "values")

    def __init__(self, values: tuple[object, ...], reverse: tuple[bool, ...], seq: int) -> None:
        self.values = values
        self.reverse = reverse
        self.seq = seq

    def __lt__(self, other: _Rank) -> bool:
        for a, b, rev in zip(self.values, other.values, self.reverse, strict=True):
            if a != b:
                return bool(a > b) if rev else bool(a < b)  # type: ignore[operator]
        return self.seq < other.seq


class SortIndex:
    """The order of every message of a mailbox under one list of criteria, kept
    between SORTs. Keys never change, so the order of a set of messages is the
    order of all of them with the others left out; a new message is inserted by
    bisection instead of sorting again. Numbered by UID, whose order is that of
    sequence numbers, so ties fall the same way."""

    __slots__ = ("criteria", "items", "last", "order")

    def __init__(self, criteria: Sequence[SortCriterion], items: Sequence[Item]) -> None:
        # The last answer to a SORT … ALL, kept to be updated in place when only
        # new messages came: (digest of the view's UIDs, by UID?, the numbers).
        self.last: tuple[bytes, bool, list[int]] | None = None
        self.criteria = tuple(criteria)
        self.items = {i.number: i for i in items}
        self.order = [i.number for i in sort_items(items, criteria)]

    def _rank(self, item: Item) -> _Rank:
        return _Rank(
            tuple(_KEYS[c.key](item) for c in self.criteria),
            tuple(c.reverse for c in self.criteria),
            item.seq,
        )

    def add(self, item: Item) -> int:
        """Insert ``item``; its position in ``order`` (-1: it was there already)."""
        if item.number in self.items:
            return -1
        rank = self._rank(item)
        at = bisect.bisect_left(self.order, rank, key=lambda u: self._rank(self.items[u]))
        self.order.insert(at, item.number)
        self.items[item.number] = item
        return at

    def answer(self, wanted: dict[int, int]) -> list[int]:
        """The messages of ``wanted`` (UID -> number in the reply), in order."""
        return [n for n in map(wanted.get, self.order) if n is not None]


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
