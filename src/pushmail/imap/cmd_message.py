"""Commands on messages of the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE
(and their UID forms), with CONDSTORE's CHANGEDSINCE / UNCHANGEDSINCE / MODSEQ."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

from pushmail.events.interfaces import ChangeKind, MailboxChanged
from pushmail.imap import commands as c
from pushmail.imap.encoder import quoted
from pushmail.imap.errors import CommandFailed, ProtocolError
from pushmail.imap.fetch_render import FetchContext, render_fetch
from pushmail.imap.search_eval import SearchContext, matches, needs_body
from pushmail.imap.selected import SelectedView
from pushmail.imap.session import Session
from pushmail.imap.types import SequenceSet
from pushmail.store.common import is_keyword
from pushmail.store.interfaces import MessageMeta, Store

# Items whose fetching sets \Seen (RFC 3501 §6.4.5), unless the mailbox is read-only.
_SETS_SEEN = frozenset({"RFC822", "RFC822.TEXT"})


def _sets_seen(items: Sequence[c.FetchAtt]) -> bool:
    for item in items:
        if isinstance(item, c.FetchBody):
            if not item.peek and not item.size_only:
                return True
        elif item in _SETS_SEEN:
            return True
    return False


def _uses_modseq(s: Session) -> bool:
    return "CONDSTORE" in s.enabled


def fetch(s: Session, cmd: c.Fetch, store: Store) -> None:
    view = s.require_view()
    if cmd.vanished and "QRESYNC" not in s.enabled:  # RFC 7162 §3.2.6: BAD unless enabled
        raise ProtocolError("VANISHED needs ENABLE QRESYNC first")
    items = list(cmd.items)
    # UID FETCH adds UID, except under UIDONLY: the UIDFETCH response leads with the
    # UID, and carries the UID item only if asked for (as Cyrus does, after
    # draft-ietf-extra-imap-uidonly-05; RFC 9586 §3.3).
    if cmd.uid and not view.uidonly and "UID" not in items:
        items.insert(0, "UID")
    if cmd.changedsince is not None and "MODSEQ" not in items:
        items.append("MODSEQ")
    if "MODSEQ" in items:
        s.condstore_command()
    uids = view.resolve(cmd.set, cmd.uid, s.saved_search)
    metas = store.get_messages(view.mailbox_id, uids)
    # A message another session expunged stays numbered until we may say so, but
    # its data is gone: the reply says why it is missing (RFC 5530 EXPUNGEISSUED),
    # so the client does not take the silence for a server fault.
    gone = "EXPUNGEISSUED" if len(metas) < len(uids) else None
    if cmd.changedsince is not None:
        metas = [m for m in metas if m.modseq > cmd.changedsince]
    if cmd.vanished:
        _vanished_earlier(s, view, store, cmd)
    metas = _mark_seen(s, view, store, items, metas)
    if "FLAGS" in items:  # the client now knows these flags: no unsolicited repeat
        view.note_own_flags(metas)
        for line in view.announce_keywords(store, metas):
            s.untagged(line)
    # PREVIEW of many messages: one query, not a cache read per message.
    previews = emailids = None
    if _PREVIEW_ITEMS.intersection(i for i in items if isinstance(i, str)):
        previews = store.previews(view.mailbox_id, [m.uid for m in metas])
    if "EMAILID" in items:
        emailids = store.email_ids(view.mailbox_id, [m.uid for m in metas])
    saved = store.save_dates(view.mailbox_id, [m.uid for m in metas]) if "SAVEDATE" in items else {}
    # One line per message, so per-message work is what FETCH 1:* of a large
    # mailbox costs: the lines are joined once, not appended one by one.
    # (Those rendered before a failure, e.g. UNKNOWN-CTE, still go out before its NO.)
    lines: list[bytes] = []
    try:
        for meta in metas:
            seq = view.seq_of(meta.uid)
            if seq is None:
                continue
            ctx = _context(view, store, seq, meta)
            if previews is not None:
                ctx.get_preview = functools.partial(previews.get, meta.uid)
            if emailids is not None:
                ctx.emailid = emailids.get(meta.uid)
            ctx.savedate = saved.get(meta.uid)
            lines.append(view.fetch_head(seq, meta.uid) + render_fetch(items, ctx))
    finally:
        if lines:
            s.untagged(b"\r\n* ".join(lines))
    s.ok(cmd.tag, ("UID " if cmd.uid else "") + "FETCH completed", gone)


_PREVIEW_ITEMS = frozenset({"PREVIEW", "PREVIEW (LAZY)"})


def _context(view: SelectedView, store: Store, seq: int, meta: MessageMeta) -> FetchContext:
    mid, uid = view.mailbox_id, meta.uid
    return FetchContext(
        seq,
        uid,
        view.flags_of(meta),
        meta.internaldate,
        meta.size,
        meta.modseq,
        functools.partial(store.get_raw, mid, uid),
        functools.partial(store.get_cache, mid, uid),
    )


def _mark_seen(
    s: Session, view: SelectedView, store: Store, items: list[c.FetchAtt], metas: list[MessageMeta]
) -> list[MessageMeta]:
    """Set \\Seen on messages whose body is fetched without PEEK, and make sure the
    new FLAGS go out with the same FETCH response."""
    if view.readonly or not _sets_seen(items):
        return metas
    unseen = [m.uid for m in metas if "\\Seen" not in m.flags]
    if not unseen:
        return metas
    result = store.store_flags(view.mailbox_id, unseen, "add", frozenset({"\\Seen"}))
    view.note_own_flags(list(result.changed))
    _publish(s, store, view.mailbox_id, "flags")
    if "FLAGS" not in items:
        items.append("FLAGS")
    if view.condstore:
        # RFC 7162 §3.1.4.1 (and §3.2.4): a CONDSTORE client is told the new MODSEQ
        # of a flag change it did not ask for with its FLAGS, with the UID, so its
        # cache stays right and the change is not echoed again.
        if "UID" not in items:
            items.insert(0, "UID")
        if "MODSEQ" not in items:
            items.append("MODSEQ")
    changed = {m.uid: m for m in result.changed}
    return [changed.get(m.uid, m) for m in metas]


def _vanished_earlier(s: Session, view: SelectedView, store: Store, cmd: c.Fetch) -> None:
    assert cmd.changedsince is not None
    ch = store.changes_since(view.mailbox_id, cmd.changedsince)
    largest = view.uidnext - 1
    if ch.expunged_complete:
        gone = [u for u in ch.expunged if cmd.set.contains(u, largest)]
    else:  # history trimmed: every UID of the set that is not here (RFC 7162 §3.2.6)
        present = set(view.uids)
        gone = [u for u in cmd.set.iter_within(largest) if u not in present]
    if gone:
        s.untagged(b"VANISHED (EARLIER) " + SequenceSet.from_ints(gone).encode().encode())


def store_(s: Session, cmd: c.StoreFlags, store: Store) -> None:
    view = s.require_view()
    if view.readonly:
        raise CommandFailed("mailbox is read-only", "READ-ONLY")
    if cmd.unchangedsince is not None:
        s.condstore_command()
    uids = view.resolve(cmd.set, cmd.uid, s.saved_search)
    flags = frozenset(f for f in cmd.flags if f != "\\Recent")
    # A silent STORE may only hide its own change: a message that others changed
    # since our last report must still have its new FLAGS reported by the refresh.
    stale = _changed_unseen(view, store, uids) if cmd.silent else set()
    result = store.store_flags(view.mailbox_id, uids, cmd.mode, flags, cmd.unchangedsince)
    known = [m for m in result.changed if m.uid not in stale]
    view.note_own_flags(known)
    if result.changed and any(is_keyword(f) and f not in view.keywords for f in flags):
        # New keywords: announced now, before any FETCH (ours or a refresh's) shows
        # them, .SILENT or not (RFC 3501 §7.2.6).
        for line in view.keywords_changed(store.keywords(view.mailbox_id)):
            s.untagged(line)
    if result.changed:
        _publish(s, store, view.mailbox_id, "flags")
    if cmd.silent:
        _silent_modseqs(s, view, known, cmd.uid)
    else:
        refused = set(result.modified)
        metas = store.get_messages(view.mailbox_id, uids)
        for line in view.announce_keywords(store, metas):
            s.untagged(line)
        for meta in metas:
            seq = view.seq_of(meta.uid)
            if seq is not None and meta.uid not in refused:
                # RFC 7162 §3.2.4: a QRESYNC server adds UID once CONDSTORE is on
                s.untagged(view.flags_response(seq, meta, with_uid=cmd.uid or view.condstore))
    code = None
    if result.modified:
        if cmd.uid:
            mod = SequenceSet.from_ints(sorted(result.modified)).encode()
        else:
            seqs = sorted(q for q in (view.seq_of(u) for u in result.modified) if q)
            mod = SequenceSet.from_ints(seqs).encode()
        code = f"MODIFIED {mod}"
    s.ok(cmd.tag, ("UID " if cmd.uid else "") + "STORE completed", code)


def _changed_unseen(view: SelectedView, store: Store, uids: list[int]) -> set[int]:
    """UIDs among ``uids`` changed after the view's last report."""
    return {m.uid for m in store.get_messages(view.mailbox_id, uids) if m.modseq > view.modseq}


def _silent_modseqs(
    s: Session, view: SelectedView, changed: Sequence[MessageMeta], uid: bool
) -> None:
    """STORE .SILENT still tells a CONDSTORE client each changed message's new
    MODSEQ (RFC 7162 §3.1.3, example 6), so its cache keeps the right value: the
    change is not echoed again later (``note_own_flags``)."""
    if not view.condstore:
        return
    for meta in changed:
        seq = view.seq_of(meta.uid)
        if seq is not None:
            head = b"" if view.uidonly else b"UID %d " % meta.uid  # RFC 7162 §3.2.4
            s.untagged(view.fetch_head(seq, meta.uid) + b"(" + head + b"MODSEQ (%d))" % meta.modseq)


def _publish(s: Session, store: Store, mailbox_id: int, kind: ChangeKind) -> None:
    mbox = store.get_mailbox_by_id(mailbox_id)
    if mbox is not None:
        s.events.append(MailboxChanged(mbox.user_id, mbox.id, mbox.highestmodseq, kind))


def search(s: Session, cmd: c.Search, store: Store) -> None:
    s.require_view()
    if cmd.charset is not None and cmd.charset.upper() not in ("US-ASCII", "UTF-8"):
        raise CommandFailed("unsupported charset", "BADCHARSET (US-ASCII UTF-8)")
    found, _ = search_found(s, cmd.key, store)
    uses_modseq = mentions(cmd.key, c.SearchModseq)
    if uses_modseq:  # a CONDSTORE enabling command (RFC 7162 §3.1)
        s.condstore_command()
    _search_reply(s, cmd, found, uses_modseq)


def search_found(
    s: Session, key: c.SearchKey, store: Store
) -> tuple[list[tuple[int, int, int]], dict[int, MessageMeta]]:
    """The messages of the selected mailbox that match ``key``, as (seq, uid,
    modseq) in sequence order, and every message's metadata by UID (SORT and
    THREAD read dates and sizes there)."""
    view = s.require_view()
    metas = {m.uid: m for m in store.list_messages(view.mailbox_id)}
    if isinstance(key, c.SearchAll):  # no key to evaluate: every message of the view
        every = [(seq, uid, metas[uid].modseq) for seq, uid in enumerate(view.uids, 1)
                 if uid in metas]
        return every, metas
    body = needs_body(key)
    emailids = store.email_ids(view.mailbox_id, metas) if mentions(key, c.SearchObjectId) else {}
    savedates = store.save_dates(view.mailbox_id, metas) if _mentions_saved(key) else {}
    saved = frozenset(s.saved_search)
    now = time.time()
    found: list[tuple[int, int, int]] = []  # (seq, uid, modseq)
    max_uid = view.uids[-1] if view.uids else 0
    for seq, uid in enumerate(view.uids, 1):
        meta = metas.get(uid)
        if meta is None:
            continue
        ctx = SearchContext(
            seq=seq,
            uid=uid,
            flags=view.flags_of(meta),
            internaldate=meta.internaldate,
            size=meta.size,
            modseq=meta.modseq,
            max_seq=len(view.uids),
            max_uid=max_uid,
            get_raw=_raw_getter(store, view.mailbox_id, uid) if body else _no_raw,
            saved=saved,
            emailid=emailids.get(uid),
            savedate=savedates.get(uid),
            now=now,
        )
        if matches(key, ctx):
            found.append((seq, uid, meta.modseq))
    return found, metas


def _no_raw() -> bytes:
    return b""


def _raw_getter(store: Store, mailbox_id: int, uid: int) -> Callable[[], bytes]:
    return lambda: store.get_raw(mailbox_id, uid)


def _mentions_saved(key: c.SearchKey) -> bool:
    """Whether a SAVEDBEFORE/SAVEDON/SAVEDSINCE key occurs in ``key``."""
    if isinstance(key, c.SearchDate):
        return key.saved
    if isinstance(key, c.SearchNot):
        return _mentions_saved(key.key)
    if isinstance(key, c.SearchOr):
        return _mentions_saved(key.left) or _mentions_saved(key.right)
    if isinstance(key, c.SearchAnd):
        return any(_mentions_saved(k) for k in key.keys)
    return False


def mentions(key: c.SearchKey, kind: type | tuple[type, ...]) -> bool:
    """Whether a key of class ``kind`` (or of one of the classes) occurs anywhere in
    ``key`` (SEARCH here, SORT and THREAD in ``cmd_sort``)."""
    if isinstance(key, kind):
        return True
    if isinstance(key, c.SearchNot):
        return mentions(key.key, kind)
    if isinstance(key, c.SearchOr):
        return mentions(key.left, kind) or mentions(key.right, kind)
    if isinstance(key, c.SearchAnd):
        return any(mentions(k, kind) for k in key.keys)
    return False


def _search_reply(
    s: Session, cmd: c.Search, found: list[tuple[int, int, int]], uses_modseq: bool
) -> None:
    numbers = [uid if cmd.uid else seq for seq, uid, _ in found]
    returns = cmd.returns
    if returns is None and s.rev2:  # RFC 9051 §7.3.4: rev2 answers with ESEARCH
        returns = ("ALL",)
    if returns is not None and "SAVE" in returns:
        s.saved_search = tuple(uid for _, uid, _ in found)
        returns = tuple(r for r in returns if r != "SAVE")
        if not returns and cmd.returns != ("SAVE",):
            returns = ("ALL",)
    modseq = _reported_modseq(found, returns or None) if uses_modseq else None
    if returns is None:
        tail = b" (MODSEQ %d)" % modseq if modseq and numbers else b""
        s.untagged(b"SEARCH" + b"".join(b" %d" % n for n in numbers) + tail)
    elif returns or cmd.returns != ("SAVE",):
        s.untagged(_esearch(cmd, numbers, returns or ("ALL",), modseq))
    s.ok(cmd.tag, ("UID " if cmd.uid else "") + "SEARCH completed")


def _reported_modseq(found: list[tuple[int, int, int]], returns: tuple[str, ...] | None) -> int:
    """The MODSEQ a SEARCH with a MODSEQ key reports: the highest of the messages it
    returns. With only MIN and/or MAX those are one or two messages, not every match
    (RFC 4731 §3.2, RFC 7162 §3.1.5)."""
    if not found:
        return 0
    if returns is not None and not {"ALL", "COUNT"} & set(returns):
        shown = [found[0]] if "MIN" in returns else []
        shown += [found[-1]] if "MAX" in returns else []
        return max((m for _, _, m in shown), default=0)
    return max(m for _, _, m in found)


def _esearch(
    cmd: c.Search, numbers: list[int], returns: tuple[str, ...], modseq: int | None
) -> bytes:
    """RFC 4731 ESEARCH response."""
    out = [b"ESEARCH (TAG " + quoted(cmd.tag) + b")"]
    if cmd.uid:
        out.append(b"UID")
    if numbers:
        if "MIN" in returns:
            out.append(b"MIN %d" % numbers[0])
        if "MAX" in returns:
            out.append(b"MAX %d" % numbers[-1])
        if "ALL" in returns:
            out.append(b"ALL " + SequenceSet.from_ints(numbers).encode().encode())
    if "COUNT" in returns:
        out.append(b"COUNT %d" % len(numbers))
    if modseq and numbers:
        out.append(b"MODSEQ %d" % modseq)
    return b" ".join(out)


def copy(s: Session, cmd: c.Copy, store: Store) -> None:
    view = s.require_view()
    if cmd.move and view.readonly:
        raise CommandFailed("mailbox is read-only", "READ-ONLY")
    dest = s.mailbox(store, cmd.mailbox, trycreate=True)
    uids = view.resolve(cmd.set, cmd.uid, s.saved_search)
    verb = ("UID " if cmd.uid else "") + ("MOVE" if cmd.move else "COPY")
    if not uids:
        if not cmd.uid:
            raise CommandFailed("no such messages")
        s.ok(cmd.tag, f"{verb} completed (nothing to do)")
        return
    pairs = store.copy(view.mailbox_id, uids, dest.id, move=cmd.move)
    _publish(s, store, dest.id, "new")
    code = None
    if pairs:
        src = SequenceSet.from_ints([a for a, _ in pairs]).encode()
        dst = SequenceSet.from_ints([b for _, b in pairs]).encode()
        code = f"COPYUID {dest.uidvalidity} {src} {dst}"
    if cmd.move:
        _publish(s, store, view.mailbox_id, "expunge")
        if code:
            s.untagged(f"OK [{code}] moved".encode())
            code = None
    s.ok(cmd.tag, f"{verb} completed", code)
