"""SORT, THREAD and ESORT handlers (RFC 5256, RFC 5957, RFC 5267 §3).

The messages are chosen as SEARCH chooses them (``cmd_message.search_found``); the
order comes from the keys the store computed at delivery (``Store.sort_keys``),
so no message is parsed here.

Answers are cached (``_CACHE``): webmail sends the same SORT again and again on
a mailbox that has not changed. An entry is keyed on the mailbox's UIDVALIDITY and
HIGHESTMODSEQ (every delivery, flag change and expunge raises it), on the
session's view of it (its UIDs) and on the command; commands whose answer depends
on more than that (\\Recent, ``$``, OLDER/YOUNGER and MODSEQ, which also makes the
command CONDSTORE-enabling) are never cached.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from pushmail.imap import commands as c
from pushmail.imap.cmd_message import search_found
from pushmail.imap.encoder import quoted
from pushmail.imap.errors import CommandFailed
from pushmail.imap.session import Session
from pushmail.imap.sort import Item, sequence_runs, sort_items
from pushmail.imap.thread import ordered_subject, references, render
from pushmail.store.interfaces import Store

CHARSETS = ("UTF-8", "US-ASCII")  # RFC 5256 §3: the two a server MUST accept
CACHE_SIZE = 32

# key -> the answer's data: the numbers in order (SORT), or the THREAD data.
_CACHE: OrderedDict[tuple[object, ...], tuple[int, ...] | bytes] = OrderedDict()


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


def _cache_key(
    s: Session, store: Store, what: object, key: c.SearchKey
) -> tuple[object, ...] | None:
    if _uncacheable(key):
        return None
    view = s.require_view()
    mailbox = store.get_mailbox_by_id(view.mailbox_id)
    if mailbox is None:
        return None
    seen = hashlib.blake2b(view.uids.tobytes(), digest_size=16).digest()
    return (mailbox.id, mailbox.uidvalidity, mailbox.highestmodseq, seen, what, repr(key))


def _cached(k: tuple[object, ...] | None) -> tuple[int, ...] | bytes | None:
    if k is None:
        return None
    got = _CACHE.get(k)
    if got is not None:
        _CACHE.move_to_end(k)
    return got


def _remember(k: tuple[object, ...] | None, value: tuple[int, ...] | bytes) -> None:
    if k is not None:
        _CACHE[k] = value
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)


def _items(s: Session, key: c.SearchKey, store: Store) -> list[Item]:
    """The matching messages with their keys, numbered by UID."""
    view = s.require_view()
    found, metas = search_found(s, key, store)
    if not found:
        return []
    keys = store.sort_keys(view.mailbox_id)
    out = []
    for seq, uid, _ in found:
        meta, k = metas[uid], keys.get(uid)
        if k is not None:
            out.append(Item(uid, seq, meta.internaldate.timestamp(), meta.size, k))
    return out


def _check_charset(charset: str) -> None:
    if charset not in CHARSETS:
        raise CommandFailed("unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")


def sort(s: Session, cmd: c.Sort, store: Store) -> None:
    s.require_view()
    _check_charset(cmd.charset)
    ck = _cache_key(s, store, (cmd.name, cmd.criteria), cmd.key)
    got = _cached(ck)
    if not isinstance(got, tuple):
        ordered = sort_items(_items(s, cmd.key, store), cmd.criteria)
        got = tuple(i.number if cmd.uid else i.seq for i in ordered)
        _remember(ck, got)
    numbers = list(got)
    if _mentions_modseq(cmd.key):
        s.condstore_command()  # RFC 7162 §3.1: a MODSEQ search key enables CONDSTORE
    if cmd.returns is None:
        s.untagged(b"SORT" + b"".join(b" %d" % n for n in numbers))
    else:
        s.untagged(_esort(cmd, numbers))
    s.ok(cmd.tag, cmd.name + " completed")


def _mentions_modseq(key: c.SearchKey) -> bool:
    if isinstance(key, c.SearchModseq):
        return True
    if isinstance(key, c.SearchNot):
        return _mentions_modseq(key.key)
    if isinstance(key, c.SearchOr):
        return _mentions_modseq(key.left) or _mentions_modseq(key.right)
    if isinstance(key, c.SearchAnd):
        return any(_mentions_modseq(k) for k in key.keys)
    return False


def _esort(cmd: c.Sort, numbers: list[int]) -> bytes:
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
    ck = _cache_key(s, store, (cmd.name, cmd.algorithm), cmd.key)
    got = _cached(ck)
    if not isinstance(got, bytes):
        items = _items(s, cmd.key, store)
        if not cmd.uid:
            items = [Item(i.seq, i.seq, i.arrival, i.size, i.keys) for i in items]
        build = references if cmd.algorithm == "REFERENCES" else ordered_subject
        got = render(build(items))
        _remember(ck, got)
    if _mentions_modseq(cmd.key):
        s.condstore_command()
    s.untagged(b"THREAD " + got if got else b"THREAD")
    s.ok(cmd.tag, cmd.name + " completed")
