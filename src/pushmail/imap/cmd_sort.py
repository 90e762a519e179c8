"""SORT, THREAD and ESORT handlers (RFC 5256, RFC 5957, RFC 5267 §3).

The messages are chosen as SEARCH chooses them (``cmd_message.search_found``); the
order comes from the keys the store computed at delivery (``Store.sort_keys``),
so no message is parsed here. Four caches per store object, small and bounded:

- ``entries``: per mailbox (and UIDVALIDITY), each message's ``SortEntry``. A
  message's keys, internal date and size never change, so an entry stays right
  for as long as the UID exists; a SORT reads from the store only the messages
  that arrived since.
- ``indexes``: per mailbox and list of criteria, the order of all its messages
  (``sort.SortIndex``); a SORT filters it to the matching messages, and a new
  message is inserted into it, not sorted again.
- ``linkers``: per mailbox, step 1 of THREAD=REFERENCES over all its messages
  (``thread.Linker``), extended with the messages that arrived since; made again
  after an expunge.
- ``answers``: the answers themselves, keyed on the command, the session's view
  of the mailbox (its UIDs, which fix the sequence numbers) and, unless the search
  is ``ALL``, the mailbox's HIGHESTMODSEQ (every delivery, flag change and expunge
  raises it). ``SORT … ALL`` orders exactly the view's messages, so its answer
  depends on nothing else; a flag change elsewhere does not throw it away.
  Searches that depend on more (\\Recent, ``$``, OLDER/YOUNGER, MODSEQ, which also
  makes the command CONDSTORE-enabling) are never cached.
"""

from __future__ import annotations

import hashlib
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeVar

from pushmail.imap import commands as c
from pushmail.imap.cmd_message import mentions, search_found
from pushmail.imap.encoder import quoted
from pushmail.imap.errors import CommandFailed
from pushmail.imap.selected import SelectedView
from pushmail.imap.session import Session
from pushmail.imap.sort import Item, SortIndex, sequence_runs
from pushmail.imap.thread import Linker, ordered_subject, references
from pushmail.store.interfaces import SortEntry, Store

CHARSETS = ("UTF-8", "US-ASCII")  # RFC 5256 §3: the two a server MUST accept
ANSWERS_SIZE = 32
ENTRIES_SIZE = 8  # mailboxes; 10,000 messages take a few MB
INDEXES_SIZE = 16  # (mailbox, criteria) orders

K = TypeVar("K")
V = TypeVar("V")


class _Caches:
    """One store's caches (a process may open several stores, e.g. in tests, and
    their mailboxes' ids and UIDVALIDITYs may coincide)."""

    __slots__ = ("answers", "entries", "indexes", "linkers")

    def __init__(self) -> None:
        self.answers: OrderedDict[tuple[object, ...], tuple[int, ...] | bytes] = OrderedDict()
        self.entries: OrderedDict[tuple[int, int], dict[int, SortEntry]] = OrderedDict()
        self.indexes: OrderedDict[tuple[object, ...], SortIndex] = OrderedDict()
        self.linkers: OrderedDict[tuple[int, int], Linker] = OrderedDict()


_CACHES: weakref.WeakKeyDictionary[Store, _Caches] = weakref.WeakKeyDictionary()


def _caches(store: Store) -> _Caches:
    """``store``'s caches; a store that cannot be weakly referenced gets fresh ones
    each time (no caching) rather than being kept alive here."""
    try:
        got = _CACHES.get(store)
        if got is None:
            got = _CACHES[store] = _Caches()
        return got
    except TypeError:
        return _Caches()


def _lru_put(cache: OrderedDict[K, V], key: K, value: V, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _uncacheable(key: c.SearchKey) -> bool:
    if isinstance(key, c.SearchFlag):
        return key.flag == "\\Recent"
    if isinstance(key, c.SearchNew | c.SearchOld | c.SearchWithin | c.SearchModseq):
        return True
    if isinstance(key, c.SearchSet):
        return key.set.saved
    if isinstance(key, c.SearchNot):
        return _uncacheable(key.key)
    if isinstance(key, c.SearchOr):
        return _uncacheable(key.left) or _uncacheable(key.right)
    if isinstance(key, c.SearchAnd):
        return any(_uncacheable(k) for k in key.keys)
    return False


def _answer_key(
    s: Session, store: Store, what: object, key: c.SearchKey
) -> tuple[object, ...] | None:
    if _uncacheable(key):
        return None
    view = s.require_view()
    seen = _digest(view.uids)
    modseq = 0
    if not isinstance(key, c.SearchAll):
        mailbox = store.get_mailbox_by_id(view.mailbox_id)
        if mailbox is None:
            return None
        modseq = mailbox.highestmodseq
    return (view.mailbox_id, view.uidvalidity, seen, modseq, what, repr(key))


def _entries(store: Store, view: SelectedView, uids: Sequence[int]) -> dict[int, SortEntry]:
    """The entries of ``uids`` (those that still exist), from the cache or the store."""
    k = (view.mailbox_id, view.uidvalidity)
    cache = _caches(store).entries
    known = cache.get(k)
    if known is None or len(known) > 2 * len(view.uids) + 100:  # start over, or drop the gone
        known = {}
    missing = sorted(set(uids).difference(known))  # set operations: 10,000 UIDs in C
    if missing:
        fetched = store.sort_keys(view.mailbox_id, None if not known else missing)
        known.update(fetched)
    _lru_put(cache, k, known, ENTRIES_SIZE)
    return known


def _found(s: Session, key: c.SearchKey, store: Store) -> list[tuple[int, int]]:
    """The matching messages as (seq, uid)."""
    view = s.require_view()
    if isinstance(key, c.SearchAll):  # the view's messages, as the client sees them
        return list(enumerate(view.uids, 1))
    return [(seq, u) for seq, u, _ in search_found(s, key, store)[0]]


def _items(
    store: Store, view: SelectedView, found: Sequence[tuple[int, int]]
) -> list[Item]:
    """The messages ``found`` (seq, uid) that have entries, numbered by UID."""
    entries = _entries(store, view, [u for _, u in found])
    out = []
    for seq, u in found:
        e = entries.get(u)
        if e is not None:
            out.append(Item(u, seq, float(e.arrival), e.size, e.keys))
    return out


def _linked(s: Session, cmd: c.Thread, store: Store) -> Linker:
    """Step 1 of REFERENCES over the matching messages. For ``ALL`` the mailbox's
    ``Linker`` is kept and extended with the messages that arrived since; after an
    expunge (or for another search) it is made again."""
    view = s.require_view()
    if not isinstance(cmd.key, c.SearchAll):
        linker = Linker()
        linker.extend(_items(store, view, _found(s, cmd.key, store)))
        return linker
    lk = (view.mailbox_id, view.uidvalidity)
    linkers = _caches(store).linkers
    linker = linkers.get(lk) or Linker()
    done = len(linker.numbers)
    if done > len(view.uids) or view.uids[:done].tolist() != linker.numbers:
        linker, done = Linker(), 0
    linker.extend(_items(store, view, list(enumerate(view.uids[done:], done + 1))))
    _lru_put(linkers, lk, linker, ENTRIES_SIZE)
    return linker


def _sorted(s: Session, cmd: c.Sort, store: Store) -> tuple[int, ...]:
    """The SORT answer's numbers, from the mailbox's ``SortIndex`` for the criteria
    (made, or brought up to date with the messages that arrived since)."""
    view = s.require_view()
    if isinstance(cmd.key, c.SearchAll) and (got := _sorted_arrivals(s, cmd, store)):
        return got
    if isinstance(cmd.key, c.SearchAll):  # the view's messages, numbered in C
        uids: Sequence[int] = view.uids
        numbers = uids if cmd.uid else range(1, len(uids) + 1)
    else:
        found = _found(s, cmd.key, store)
        uids = [u for _, u in found]
        numbers = uids if cmd.uid else [seq for seq, _ in found]
    entries = _entries(store, view, uids)
    ik = (view.mailbox_id, view.uidvalidity, cmd.criteria)
    indexes = _caches(store).indexes
    index = indexes.get(ik)
    if index is None or len(index.items) > 2 * len(view.uids) + 100:
        index = SortIndex(cmd.criteria, [
            Item(u, u, float(e.arrival), e.size, e.keys) for u, e in entries.items()
        ])
    else:
        for u in sorted(set(uids).difference(index.items)):
            e = entries.get(u)
            if e is not None:
                index.add(Item(u, u, float(e.arrival), e.size, e.keys))
    _lru_put(indexes, ik, index, INDEXES_SIZE)
    wanted = dict(zip(uids, numbers, strict=True))
    for u in set(uids).difference(entries):  # gone before its keys were read
        del wanted[u]
    answer = index.answer(wanted)
    if isinstance(cmd.key, c.SearchAll) and len(answer) == len(uids):
        if len(index.order) > len(answer):  # expunged messages: out of the index
            index.order = [u for u in index.order if u in wanted]
            index.items = {u: index.items[u] for u in index.order}
        index.last = (_digest(view.uids), cmd.uid, answer)
    return tuple(answer)


def _digest(uids: array[int]) -> bytes:
    return hashlib.blake2b(uids.tobytes(), digest_size=16).digest()


def _sorted_arrivals(s: Session, cmd: c.Sort, store: Store) -> tuple[int, ...] | None:
    """``SORT … ALL`` when the view only grew since the last answer (new messages
    have the highest UIDs and sequence numbers, so no number changed): the new
    messages are inserted into the last answer, which lists every message of the
    index in its order, at the positions they take in the index. None when that
    does not apply."""
    view = s.require_view()
    index = _caches(store).indexes.get((view.mailbox_id, view.uidvalidity, cmd.criteria))
    if index is None or index.last is None:
        return None
    digest, by_uid, answer = index.last
    done = len(answer)
    if (
        by_uid != cmd.uid
        or done != len(index.order)
        or done > len(view.uids)
        or _digest(view.uids[:done]) != digest
    ):
        return None
    new = view.uids[done:].tolist()
    entries = _entries(store, view, new)
    if any(u not in entries for u in new):
        return None
    for seq, u in enumerate(new, done + 1):
        e = entries[u]
        at = index.add(Item(u, u, float(e.arrival), e.size, e.keys))
        if at < 0:  # cannot happen while the answer lists the whole index; be safe
            index.last = None
            return None
        answer.insert(at, u if cmd.uid else seq)
    index.last = (_digest(view.uids), cmd.uid, answer)
    return tuple(answer)


def _check_charset(charset: str) -> None:
    if charset not in CHARSETS:
        raise CommandFailed("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")


def sort(s: Session, cmd: c.Sort, store: Store) -> None:
    s.require_view()
    _check_charset(cmd.charset)
    ak = _answer_key(s, store, (cmd.name, cmd.criteria), cmd.key)
    answers = _caches(store).answers
    got = answers.get(ak) if ak is not None else None
    if not isinstance(got, tuple):
        got = _sorted(s, cmd, store)
        if ak is not None:
            _lru_put(answers, ak, got, ANSWERS_SIZE)
    modseq = 0
    if mentions(cmd.key, c.SearchModseq):
        s.condstore_command()  # RFC 7162 §3.1: a MODSEQ search key enables CONDSTORE
        modseq = _reported_modseq(s, cmd, store, got)
    if cmd.returns is None:
        tail = b" (MODSEQ %d)" % modseq if modseq else b""  # RFC 7162 §3.1.5
        # str() of an int and one join are several times faster than b"%d" each.
        text = " ".join(map(str, got)).encode("ascii")
        s.untagged(b"SORT " + text + tail if got else b"SORT" + tail)
    else:
        s.untagged(_esort(cmd, got) + (b" MODSEQ %d" % modseq if modseq else b""))
    s.ok(cmd.tag, cmd.name + " completed")


def _reported_modseq(s: Session, cmd: c.Sort, store: Store, numbers: Sequence[int]) -> int:
    """The highest MODSEQ of the messages the answer reports (RFC 7162 §3.1.5; with
    only MIN and/or MAX, of those one or two, RFC 4731 §3.2). Such a search is
    never cached, so this reads the same state the answer was made from."""
    if not numbers:
        return 0
    found = search_found(s, cmd.key, store)[0]
    by_number = {(uid if cmd.uid else seq): m for seq, uid, m in found}
    shown = list(numbers)
    if cmd.returns is not None and not {"ALL", "COUNT"} & set(cmd.returns or ("ALL",)):
        shown = ([shown[0]] if "MIN" in cmd.returns else []) + (
            [shown[-1]] if "MAX" in cmd.returns else []
        )
    return max((by_number.get(n, 0) for n in shown), default=0)


def _esort(cmd: c.Sort, numbers: Sequence[int]) -> bytes:
    """RFC 5267 §3.1 / RFC 4731: MIN and MAX are the first and last message in sort
    order, ALL lists them in that order, COUNT counts them; RETURN () means ALL."""
    returns = cmd.returns or ("ALL",)
    out = [b"ESEARCH (TAG " + quoted(cmd.tag) + b")"]
    if cmd.uid:
        out.append(b"UID")
    if numbers:
        if "MIN" in returns:
            out.append(b"MIN %d" % numbers[0])
        if "MAX" in returns:
            out.append(b"MAX %d" % numbers[-1])
        if "ALL" in returns:
            out.append(b"ALL " + sequence_runs(numbers))
    if "COUNT" in returns:
        out.append(b"COUNT %d" % len(numbers))
    return b" ".join(out)


def thread(s: Session, cmd: c.Thread, store: Store) -> None:
    s.require_view()
    _check_charset(cmd.charset)
    ak = _answer_key(s, store, (cmd.name, cmd.algorithm), cmd.key)
    answers = _caches(store).answers
    got = answers.get(ak) if ak is not None else None
    if not isinstance(got, bytes):
        if cmd.algorithm == "REFERENCES":
            got = references(_linked(s, cmd, store), cmd.uid)
        else:
            view = s.require_view()
            got = ordered_subject(_items(store, view, _found(s, cmd.key, store)), cmd.uid)
        if ak is not None:
            _lru_put(answers, ak, got, ANSWERS_SIZE)
    if mentions(cmd.key, c.SearchModseq):
        s.condstore_command()
    s.untagged(b"THREAD " + got if got else b"THREAD")
    s.ok(cmd.tag, cmd.name + " completed")
