"""Group commit: ``Deliverer.deliver_many`` stores a batch in one transaction, and
``LocalDelivery`` forms batches from deliveries that wait for the store thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from pushmail.delivery import Deliverer, RecipientResult
from pushmail.events.interfaces import MailboxChanged
from pushmail.smtp.delivery_port import LocalDelivery
from pushmail.store.interfaces import Appended, MessageCache, NewMessage, Store, StoreError, User
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner


def raw(n: int) -> bytes:
    return f"Subject: message {n}\r\n\r\nbody {n}\r\n".encode()


def simple_cache(data: bytes) -> MessageCache:
    return MessageCache(b"NIL", b"NIL", str(len(data)).encode())


class CountingStore(SqliteStore):
    """A real store that remembers each ``deliver`` call's targets, and can fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[list[tuple[int, bytes]]] = []
        self.fail_deliver = False
        self.fail_lookup = False

    def deliver_within_quota(
        self, targets: Sequence[tuple[int, NewMessage]]
    ) -> list[Appended | None]:
        self.calls.append([(box, m.raw) for box, m in targets])
        if self.fail_deliver:
            raise StoreError("disk full")
        return super().deliver_within_quota(targets)

    def get_user(self, address: str) -> User | None:
        if self.fail_lookup:
            raise StoreError("database is locked")
        return super().get_user(address)


class Recorder:
    def __init__(self) -> None:
        self.events: list[MailboxChanged] = []

    def publish(self, event: MailboxChanged) -> None:
        self.events.append(event)


class BatchRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        self.batches += 1
        self.events.extend(events)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(tmp_path / "db")
    s.create_user("alice@x", "h")
    s.create_user("bob@x", "h")
    yield s
    s.close()


def inbox(store: Store, address: str) -> list[bytes]:
    user = store.get_user(address)
    assert user is not None
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    return [store.get_raw(box.id, m.uid) for m in store.list_messages(box.id)]


def codes(results: list[list[RecipientResult]]) -> list[list[int]]:
    return [[r.code for r in rs] for rs in results]


def test_one_store_call_for_the_batch_and_results_in_order(store: CountingStore) -> None:
    rec = BatchRecorder()
    d = Deliverer(store, rec, make_cache=simple_cache)
    results = d.deliver_many(
        [
            (["alice@x"], raw(1)),
            (["ghost@x", "bob@x"], raw(2)),
            (["nobody@x"], raw(3)),
            (["Alice+tag@x", "alice@x", "bob@x"], raw(4)),
        ]
    )
    assert codes(results) == [[250], [550, 250], [550], [250, 250, 250]]
    assert results[1][0].address == "ghost@x" and results[3][0].address == "Alice+tag@x"
    assert len(store.calls) == 1 and len(store.calls[0]) == 4  # alice once for message 4
    assert inbox(store, "alice@x") == [raw(1), raw(4)]  # UIDs in batch order
    assert inbox(store, "bob@x") == [raw(2), raw(4)]
    assert rec.batches == 1 and len(rec.events) == 4
    boxes = {e.mailbox_id for e in rec.events}
    assert len(boxes) == 2
    for box in boxes:  # each box's events carry its new modseqs, ascending
        seqs = [e.modseq for e in rec.events if e.mailbox_id == box]
        mailbox = store.get_mailbox_by_id(box)
        assert mailbox is not None
        assert seqs == sorted(seqs) and seqs[-1] == mailbox.highestmodseq


def test_store_failure_fails_the_whole_batch_with_451(store: CountingStore) -> None:
    store.fail_deliver = True
    rec = Recorder()
    d = Deliverer(store, rec, make_cache=simple_cache)
    results = d.deliver_many([(["alice@x"], raw(1)), (["bob@x", "ghost@x"], raw(2))])
    assert codes(results) == [[451], [451, 451]]
    assert {r.enhanced for rs in results for r in rs} == {"4.3.0"}
    assert rec.events == [] and inbox(store, "alice@x") == []


def test_a_message_without_recipients_is_not_failed_by_the_store(store: CountingStore) -> None:
    store.fail_deliver = True
    d = Deliverer(store, Recorder(), make_cache=simple_cache)
    results = d.deliver_many([(["ghost@x"], raw(1)), (["alice@x"], raw(2))])
    assert codes(results) == [[550], [451]]


def test_too_big_or_unparsable_fail_alone(store: CountingStore) -> None:
    def picky(data: bytes) -> MessageCache:
        if b"message 2" in data:
            raise ValueError("parser bug")
        return simple_cache(data)

    d = Deliverer(store, Recorder(), make_cache=picky, max_size=len(raw(1)))
    big = raw(3) + b"x" * 100
    results = d.deliver_many([(["alice@x"], raw(1)), (["alice@x"], raw(2)), (["alice@x"], big)])
    assert codes(results) == [[250], [451], [552]]
    assert inbox(store, "alice@x") == [raw(1)]
    assert len(store.calls) == 1


def test_deliver_is_a_batch_of_one(store: CountingStore) -> None:
    d = Deliverer(store, Recorder(), make_cache=simple_cache)
    assert [r.code for r in d.deliver(["bob@x", "ghost@x"], raw(1))] == [250, 550]
    assert store.calls == [[(store.calls[0][0][0], raw(1))]]


def test_empty_batch(store: CountingStore) -> None:
    assert Deliverer(store, Recorder(), make_cache=simple_cache).deliver_many([]) == []
    assert store.calls == []


# -- LocalDelivery: batches form while the store thread is busy ------------------------


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[StoreRunner]:
    def open_store() -> CountingStore:
        s = CountingStore(tmp_path / "db")
        s.create_user("alice@x", "h")
        s.create_user("bob@x", "h")
        return s

    r = StoreRunner(open_store)
    yield r
    r.close()


def calls(runner: StoreRunner) -> list[list[tuple[int, bytes]]]:
    def read(store: Store) -> list[list[tuple[int, bytes]]]:
        assert isinstance(store, CountingStore)
        return list(store.calls)

    return runner.call_sync(read)


async def settle() -> None:
    """Let every ready task run until it waits on something outside the loop."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_waiting_deliveries_share_one_transaction(runner: StoreRunner) -> None:
    rec = Recorder()

    async def main() -> list[list[int]]:
        delivery = LocalDelivery(runner, rec, "mx.x")
        gate = threading.Event()
        blocker = asyncio.ensure_future(runner.run(lambda s: gate.wait(10)))
        first = asyncio.ensure_future(delivery.deliver(["alice@x"], raw(0)))
        await settle()  # its batch of one is now queued behind the blocker
        rest = [
            asyncio.ensure_future(delivery.deliver(rcpts, raw(n)))
            for n, rcpts in enumerate([["bob@x"], ["ghost@x", "alice@x"], ["alice@x"]], 1)
        ]
        await settle()
        gate.set()
        await blocker
        done = await asyncio.gather(first, *rest)
        return [[r.code for r in rs] for rs in done]

    assert asyncio.run(main()) == [[250], [250], [550, 250], [250]]
    assert [len(c) for c in calls(runner)] == [1, 3]  # two transactions for four messages
    assert [raw_ for _, raw_ in calls(runner)[1]] == [raw(1), raw(2), raw(3)]
    assert len(rec.events) == 4
    alice = runner.call_sync(lambda s: inbox(s, "alice@x"))
    assert alice == [raw(0), raw(2), raw(3)]


def test_a_failed_job_fails_its_batch_only(runner: StoreRunner) -> None:
    def set_lookup_failure(on: bool) -> None:
        def flip(store: Store) -> None:
            assert isinstance(store, CountingStore)
            store.fail_lookup = on

        runner.call_sync(flip)

    async def main() -> tuple[list[object], list[int]]:
        delivery = LocalDelivery(runner, Recorder(), "mx.x")
        set_lookup_failure(True)
        failed = await asyncio.gather(
            delivery.deliver(["alice@x"], raw(1)),
            delivery.deliver(["bob@x"], raw(2)),
            return_exceptions=True,
        )
        set_lookup_failure(False)
        later = await delivery.deliver(["alice@x"], raw(3))
        return list(failed), [r.code for r in later]

    failed, later = asyncio.run(main())
    assert all(isinstance(x, StoreError) for x in failed)
    assert later == [250]


def test_a_session_that_goes_away_does_not_break_the_batch(runner: StoreRunner) -> None:
    async def main() -> list[int]:
        delivery = LocalDelivery(runner, Recorder(), "mx.x")
        gate = threading.Event()
        blocker = asyncio.ensure_future(runner.run(lambda s: gate.wait(10)))
        gone = asyncio.ensure_future(delivery.deliver(["alice@x"], raw(1)))
        stays = asyncio.ensure_future(delivery.deliver(["bob@x"], raw(2)))
        await settle()
        gone.cancel()
        gate.set()
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await gone
        return [r.code for r in await stays]

    assert asyncio.run(main()) == [250]
    assert runner.call_sync(lambda s: inbox(s, "bob@x")) == [raw(2)]
