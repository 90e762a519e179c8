"""What only the PostgreSQL store must add to the conformance suite: order across
nodes, connections held only for the length of a call, names PostgreSQL refuses.

Two store objects with pools of their own stand for two nodes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from pg_testdb import ADMIN_URL, scratch_database
from pushmail.store.interfaces import Conflict, FlagMode, MessageCache, NewMessage, StoreError

if os.environ.get("CI") != "true":  # in CI a missing driver fails the collection
    pytest.importorskip("psycopg_pool", reason="pip install -e '.[postgres]'")

from pushmail.store.pg_base import StoreUnavailable
from pushmail.store.pg_schema import new_pool
from pushmail.store.postgres import PostgresStore

CACHE = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')

DELIVERIES_PER_NODE = 1000


def message(text: str) -> NewMessage:
    return NewMessage(f"Subject: {text}\r\n\r\n{text}\r\n".encode(), CACHE)


@pytest.fixture
def url() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def test_cursor_sync_never_misses_a_message_delivered_through_two_nodes(url: str) -> None:
    """Issue 17: two nodes deliver into one mailbox at once (one of them also into
    another mailbox in the same transaction, locking two rows); a third client
    syncs by cursor: "what changed since the MODSEQ I last saw". Every batch it gets
    must start at its UIDNEXT cursor and have no hole, or a client would skip the
    hole's message for good; HIGHESTMODSEQ and MODSEQs must never go backwards."""
    pools = [new_pool(url, max_size=2) for _ in range(3)]
    node_a, node_b, reader = (PostgresStore(url, pool=p) for p in pools)
    try:
        owner = node_a.create_user("sync@example.org", "h")
        box = node_a.get_mailbox(owner.id, "INBOX")
        other = node_a.get_mailbox(owner.id, "Sent")
        assert box is not None and other is not None
        errors: list[BaseException] = []
        done = threading.Event()

        def deliver(store: PostgresStore, name: str) -> None:
            try:
                for n in range(DELIVERIES_PER_NODE):
                    msg = message(f"{name} {n}")
                    if name == "b" and n % 3 == 0:
                        store.deliver([(other.id, msg), (box.id, msg)])
                    else:
                        store.append(box.id, msg)
            except BaseException as exc:
                errors.append(exc)

        writers = [
            threading.Thread(target=deliver, args=(node_a, "a")),
            threading.Thread(target=deliver, args=(node_b, "b")),
        ]
        for t in writers:
            t.start()

        def watch() -> None:
            for t in writers:
                t.join()
            done.set()

        threading.Thread(target=watch).start()

        cursor, last_modseq, syncs, gaps = 1, 0, 0, []
        while True:
            finished = done.is_set()  # read before the sync: then one more sees all
            changes = reader.changes_since(box.id, last_modseq)
            syncs += 1
            new = [m for m in changes.changed if m.uid >= cursor]
            assert changes.highestmodseq >= last_modseq
            uids = [m.uid for m in new]
            if uids != list(range(cursor, cursor + len(uids))):
                gaps.append((cursor, uids[:5]))
            assert all(m.modseq > last_modseq for m in changes.changed)
            assert changes.uidnext == cursor + len(uids)
            cursor += len(uids)
            last_modseq = changes.highestmodseq
            if finished:
                break
        assert not errors, errors
        assert not gaps, gaps[:3]
        total = 2 * DELIVERIES_PER_NODE
        assert cursor == total + 1
        assert reader.uids(box.id) == list(range(1, total + 1))
        print(f"{total} deliveries through two nodes, {syncs} cursor syncs, no gap")
    finally:
        for store in (node_a, node_b, reader):
            store.close()
        for pool in pools:
            pool.close()


def test_a_store_holds_no_connection_between_calls(url: str) -> None:
    """An idle session holds no database connection: a store call borrows one from
    the pool and gives it back, so between commands none is in use."""
    pool = new_pool(url, max_size=2)
    store = PostgresStore(url, pool=pool)
    try:
        owner = store.create_user("idle@example.org", "h")
        box = store.get_mailbox(owner.id, "INBOX")
        assert box is not None
        store.append(box.id, message("one"))
        store.select_info(box.id)
        stats = pool.get_stats()
        assert stats["pool_size"] - stats["pool_available"] == 0, stats
        assert stats["pool_size"] <= 2
    finally:
        store.close()
        pool.close()


def test_stores_of_one_process_share_one_bounded_pool(url: str) -> None:
    """The store thread and the reader thread of a node open a store each; both
    borrow from one pool for their URL, closed with the last store."""
    one, two = PostgresStore(url), PostgresStore(url)
    try:
        assert getattr(one, "_pool") is getattr(two, "_pool")  # noqa: B009
    finally:
        one.close()
        pool = getattr(two, "_pool")  # noqa: B009
        assert not pool.closed
        two.close()
        assert pool.closed
        two.close()  # twice is harmless


def test_names_with_nul_are_refused_not_crashed(url: str) -> None:
    """PostgreSQL text cannot hold NUL; a name with one (a client can spell it in
    modified UTF-7) is an invalid name, and an address with one is nobody."""
    store = PostgresStore(url)
    try:
        owner = store.create_user("nul@example.org", "h")
        with pytest.raises(Conflict):
            store.create_mailbox(owner.id, "a\x00b")
        assert store.get_mailbox(owner.id, "a\x00b") is None
        assert store.get_user("nul\x00@example.org") is None
    finally:
        store.close()


def test_connections_killed_by_a_server_restart_are_replaced(url: str) -> None:
    """After PostgreSQL restarts, the pool's idle connections are dead; the next read,
    and the next write (which had not begun), get a new one instead of failing."""
    import psycopg

    pool = new_pool(url, max_size=2)
    store = PostgresStore(url, pool=pool)
    try:
        owner = store.create_user("restart@example.org", "h")
        dbname = url.rsplit("/", 1)[1]
        for step in ("read", "write"):
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                ).fetchone()
            assert killed is not None and killed[0] >= 1
            if step == "read":
                assert store.get_user("restart@example.org") == owner
            else:
                box = store.get_mailbox(owner.id, "INBOX")
                assert box is not None
                assert store.append(box.id, message("after restart")).uid == 1
    finally:
        store.close()
        pool.close()


def test_an_unreachable_database_is_a_store_error() -> None:
    """Nothing listens: the call fails with StoreUnavailable (a StoreError, which
    LMTP answers with 4xx) after the pool's timeout, instead of hanging."""
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/none?connect_timeout=1"
    pool = new_pool(url, max_size=1, timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            PostgresStore(url, pool=pool)
        assert isinstance(caught.value, StoreError)
    finally:
        pool.close()


def test_an_expunge_on_one_node_never_drops_a_text_a_delivery_on_another_uses(
    url: str,
) -> None:
    """Bodies are shared by digest. Two nodes each deliver the same text into a
    mailbox of their own, read it back, copy it to the other's mailbox (so their
    locks are taken in opposite orders) and expunge it, dropping the text whenever
    no message holds it: a delivery racing such an expunge on the other node must
    still find its text, and no call may fail."""
    pools = [new_pool(url, max_size=2) for _ in range(2)]
    node_a, node_b = (PostgresStore(url, pool=p) for p in pools)
    rounds = 300
    try:
        owner = node_a.create_user("gc@example.org", "h")
        box_a = node_a.get_mailbox(owner.id, "INBOX")
        box_b = node_a.get_mailbox(owner.id, "Trash")
        assert box_a is not None and box_b is not None
        doomed = NewMessage(
            b"Subject: shared\r\n\r\nthe same text\r\n", CACHE, frozenset({"\\Deleted"})
        )
        failures: list[BaseException] = []

        def churn(store: PostgresStore, mine: int, other: int) -> None:
            try:
                for _ in range(rounds):
                    uid = store.append(mine, doomed).uid
                    assert store.get_raw(mine, uid) == doomed.raw
                    store.copy(mine, [uid], other)
                    store.expunge(mine)
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=churn, args=(node_a, box_a.id, box_b.id)),
            threading.Thread(target=churn, args=(node_b, box_b.id, box_a.id)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures[:3]
        node_a.expunge(box_a.id)
        node_a.expunge(box_b.id)
        assert node_a.stored_texts() == (0, 0)
    finally:
        node_a.close()
        node_b.close()
        for pool in pools:
            pool.close()


def test_old_structures_are_recomputed_once(url: str) -> None:
    """As for SQLite (test_structure_refresh.py): structures stored by older code
    are redone from the texts once, and not again when current."""
    from test_structure_refresh import FOLDED, OLD

    from pushmail.imap.structure import STRUCTURE_VERSION, build_cache

    store = PostgresStore(url)
    try:
        owner = store.create_user("a@example.org", "")
        box = store.get_mailbox(owner.id, "INBOX")
        assert box is not None
        uid = store.append(box.id, NewMessage(FOLDED, OLD)).uid
        assert store.structure_version() == 0
        assert store.refresh_structures(STRUCTURE_VERSION, build_cache, batch=1) == 1
        assert store.get_cache(box.id, uid) == build_cache(FOLDED)
        assert store.structure_version() == STRUCTURE_VERSION
        store.append(box.id, NewMessage(FOLDED + b"x", OLD))
        assert store.refresh_structures(STRUCTURE_VERSION, build_cache) == 0
    finally:
        store.close()


def test_claim_recent_without_waiting_gives_up_while_a_delivery_holds_the_mailbox(
    url: str,
) -> None:
    """``claim_recent(wait=False)`` (a hibernated batch's refresh) must not queue
    behind another node's delivery holding the mailbox lock: it claims nothing,
    the messages stay \\Recent for the next claim, and a waiting claim takes them."""
    import psycopg

    store = PostgresStore(url)
    try:
        owner = store.create_user("recent@example.org", "h")
        box = store.get_mailbox(owner.id, "INBOX")
        assert box is not None
        store.append(box.id, message("one"))
        with psycopg.connect(url) as other:  # another node, mid-delivery
            other.execute("SELECT 1 FROM mailboxes WHERE id = %s FOR UPDATE", (box.id,))
            assert store.claim_recent(box.id, wait=False) == 2  # nothing below UIDNEXT
            other.rollback()
        assert store.counts(box.id).recent == 1
        assert store.claim_recent(box.id) == 1
        assert store.claim_recent(box.id, wait=False) == 2
    finally:
        store.close()


def test_flag_changes_on_two_nodes_at_once_lose_nothing(url: str) -> None:
    """STORE reads flags and writes them back: two nodes changing the same messages
    at once must not overwrite each other's change (the mailbox lock orders them),
    and every change gets a MODSEQ of its own."""
    pools = [new_pool(url, max_size=2) for _ in range(2)]
    node_a, node_b = (PostgresStore(url, pool=p) for p in pools)
    rounds = 150
    try:
        owner = node_a.create_user("flags@example.org", "h")
        box = node_a.get_mailbox(owner.id, "INBOX")
        assert box is not None
        uids = [node_a.append(box.id, message(f"m{n}")).uid for n in range(5)]
        modseqs: dict[str, list[int]] = {"a": [], "b": []}
        failures: list[BaseException] = []

        def toggle(store: PostgresStore, name: str) -> None:
            try:
                for n in range(rounds):
                    mode: FlagMode = "add" if n % 2 == 0 else "remove"
                    result = store.store_flags(box.id, uids, mode, frozenset({f"${name}"}))
                    # Each toggle changes every message: nobody else touches ${name}.
                    assert [m.uid for m in result.changed] == uids, (name, n, result)
                    modseqs[name].append(result.changed[0].modseq)
                store.store_flags(box.id, uids, "add", frozenset({f"${name}"}))
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=toggle, args=(node_a, "a")),
            threading.Thread(target=toggle, args=(node_b, "b")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures[:3]
        assert all(m.flags == {"$a", "$b"} for m in node_a.list_messages(box.id))
        every = modseqs["a"] + modseqs["b"]
        assert len(set(every)) == len(every) == 2 * rounds  # no MODSEQ given twice
        assert modseqs["a"] == sorted(modseqs["a"]) and modseqs["b"] == sorted(modseqs["b"])
    finally:
        node_a.close()
        node_b.close()
        for pool in pools:
            pool.close()
