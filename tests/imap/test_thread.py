"""THREAD=REFERENCES and ORDEREDSUBJECT (RFC 5256 §4) on hand-made keys: the cases
the RFC names (duplicate Message-IDs, loops, missing parents, subject merging) and
the response syntax of §5."""

from __future__ import annotations

import random

from pushmail.imap.commands import SortCriterion
from pushmail.imap.sort import Item, SortIndex, sort_items
from pushmail.imap.thread import Linker, ordered_subject, references
from pushmail.store.interfaces import SortKeys


def _item(seq: int, mid: str | None, refs: str = "", subject: str = "s", reply: bool = False,
          sent: int | None = None) -> Item:
    keys = SortKeys(subject, reply, "", "", "", "", "", seq * 10 if sent is None else sent,
                    mid, tuple(refs.split()))
    return Item(seq, seq, 0.0, 0, keys)


def _refs(*items: Item) -> bytes:
    linker = Linker()
    linker.extend(sorted(items, key=lambda i: i.seq))
    return references(linker, uid=False)


def test_replies_nest_and_chains_stay_flat() -> None:
    got = _refs(_item(1, "a", subject="a"), _item(2, "b", "a", "a", True),
                _item(3, "c", "a b", "a", True), _item(4, "d", "a", "a", True))
    assert got == b"(1 (2 3)(4))"


def test_missing_parent_makes_a_dummy_with_children() -> None:
    # Two replies to a message not in the mailbox: a dummy root over both.
    assert _refs(_item(1, "x", "gone", "p", True), _item(2, "y", "gone", "q", True)) == (
        b"((1)(2))"
    )
    # One reply to a missing message: the dummy is pruned, the message promoted.
    assert _refs(_item(1, "x", "gone", "p", True)) == b"(1)"
    # A missing message in the middle of a chain: pruned, its child promoted.
    assert _refs(_item(1, "a", subject="a"), _item(2, "c", "a gone", "b")) == b"(1 2)"


def test_duplicate_message_ids_are_made_unique() -> None:
    # 2 has 1's Message-ID: 3 refers to the first holder; 2 stands alone.
    got = _refs(_item(1, "a", subject="a"), _item(2, "a", subject="b"),
                _item(3, "c", "a", "c"))
    assert got == b"(1 3)(2)"
    # Messages without a Message-ID each stand alone.
    assert _refs(_item(1, None, subject="a"), _item(2, None, subject="b")) == b"(1)(2)"


def test_loops_are_not_made() -> None:
    # 1 refers to 2 and 2 to 1: 2 is processed last, and linking it under 1 would
    # close a loop, so it stays 1's parent.
    assert _refs(_item(1, "a", "b", "x"), _item(2, "b", "a", "y")) == b"(2 1)"
    # A message that refers to itself.
    assert _refs(_item(1, "a", "a", "x")) == b"(1)"
    # References that loop among themselves.
    assert _refs(_item(1, "z", "a b a", "x"), _item(2, "a", "b", "y")) == b"(2 1)"


def test_own_references_replace_links_made_by_others() -> None:
    # 1 says a -> b -> 1; then b itself (2) says it replies to nothing: step 1.B
    # breaks the a -> b link (no references: no parent), and a (3) stands alone.
    got = _refs(_item(1, "c", "a b", "c"), _item(2, "b", "", "b"), _item(3, "a", "", "a"))
    assert got == b"(2 1)(3)"


def test_subject_merging() -> None:
    # A reply without references joins the thread of its base subject.
    assert _refs(_item(1, "a", subject="s"), _item(2, "b", subject="s", reply=True)) == b"(1 2)"
    # Two non-replies of one subject: a dummy over both.
    assert _refs(_item(1, "a", subject="s"), _item(2, "b", subject="s")) == b"((1)(2))"
    # A reply first, then the original: the original holds the thread.
    assert _refs(_item(1, "a", subject="s", reply=True), _item(2, "b", subject="s")) == (
        b"(2 1)"
    )
    # Empty subjects are never merged.
    assert _refs(_item(1, "a", subject=""), _item(2, "b", subject="")) == b"(1)(2)"
    # A dummy root (missing parent) takes in a same-subject thread.
    got = _refs(_item(1, "a", "gone", "s", True), _item(2, "b", "gone", "s", True),
                _item(3, "c", subject="s"))
    assert got == b"((1)(2)(3))"


def test_children_merged_in_are_sorted_under_a_later_dummy() -> None:
    # 3 (a reply without references) joins 1's thread by subject, before 2 in date;
    # then 4, another original, puts 1 under a new dummy: 1's children still sorted.
    got = _refs(_item(1, "a", subject="s", sent=10), _item(2, "b", "a", "s", True, sent=50),
                _item(3, "c", subject="s", reply=True, sent=20),
                _item(4, "d", subject="s", sent=30))
    assert got == b"((1 (3)(2))(4))"


def test_siblings_sorted_by_date_then_sequence() -> None:
    got = _refs(_item(1, "a", subject="a", sent=50), _item(2, "b", "a", "a", True, sent=40),
                _item(3, "c", "a", "a", True, sent=30), _item(4, "d", "a", "a", True, sent=30))
    assert got == b"(1 (3)(4)(2))"


def test_ordered_subject() -> None:
    items = [_item(1, "a", subject="b"), _item(2, "b", subject="a", reply=True),
             _item(3, "c", subject="b"), _item(4, "d", subject="a"), _item(5, "e", subject="b")]
    assert ordered_subject(items, uid=False) == b"(1 (3)(5))(2 4)"


def test_deep_chain_does_not_exhaust_the_stack() -> None:
    items = [_item(1, "m1", subject="x")]
    items += [_item(n, f"m{n}", f"m{n - 1}", "x", True) for n in range(2, 5001)]
    out = _refs(*items)
    assert out.startswith(b"(1 2 3 ") and out.endswith(b" 4999 5000)")


def test_linker_extended_equals_linker_made_at_once() -> None:
    rng = random.Random(4)
    items = []
    for n in range(1, 200):
        refs = " ".join(f"m{rng.randint(1, 220)}" for _ in range(rng.randint(0, 3)))
        items.append(_item(n, f"m{rng.randint(1, 220)}", refs, rng.choice("abcd"),
                           rng.random() < 0.5, sent=rng.randint(1, 50)))
    whole = Linker()
    whole.extend(items)
    parts = Linker()
    for start in range(0, len(items), 37):
        parts.extend(items[start:start + 37])
        assert references(parts, uid=True)  # a THREAD between arrivals changes nothing
    assert references(parts, uid=False) == references(whole, uid=False)


def test_sort_ties_keep_sequence_order_under_reverse() -> None:
    items = [_item(3, "c", subject="b"), _item(1, "a", subject="a"), _item(2, "b", subject="b")]
    got = sort_items(items, [SortCriterion("SUBJECT", reverse=True)])
    assert [i.seq for i in got] == [2, 3, 1]


def test_sort_index_insertion_matches_sorting_again() -> None:
    rng = random.Random(5256)
    keys = ["ARRIVAL", "DATE", "SUBJECT", "SIZE", "FROM"]
    for _ in range(30):
        criteria = [SortCriterion(rng.choice(keys), rng.random() < 0.5)
                    for _ in range(rng.randint(1, 3))]
        items = []
        for n in range(1, 60):
            k = SortKeys(rng.choice("abc"), False, rng.choice(["X", "Y", ""]), "", "", "", "",
                         rng.choice([None, 5, 7]), None, ())
            items.append(Item(n, n, float(rng.choice([1, 2, 3])), rng.choice([10, 20]), k))
        index = SortIndex(criteria, items[:20])
        for item in items[20:]:
            index.add(item)
        wanted = {i.number: i.number for i in items if rng.random() < 0.7}
        expect = [i.number for i in sort_items(items, criteria) if i.number in wanted]
        assert index.answer(wanted) == expect
