"""Home workers (net/homes.py): the record codec, the channel, and two workers in one
process handing a sleeping session over, including a delivery made while the
session's socket was in flight (no worker had it then)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushmail.config import Limits
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.local import LocalBus
from pushmail.imap.session import ServerInfo
from pushmail.imap.structure import build_cache
from pushmail.net.hibernate import Hibernator
from pushmail.net.homes import (
    HomeLinks,
    Homes,
    RecordFields,
    decode_batch,
    decode_record,
    encode_batch,
    encode_record,
)
from pushmail.net.idle_hub import IdleHub
from pushmail.net.imap_conn import ImapConnection, ImapContext
from pushmail.store.interfaces import NewMessage, Store
from pushmail.store.sqlite import SqliteStore
from pushmail.threads.store_runner import StoreRunner

PASSWORD = "secret"
T = TypeVar("T")


def fields(**changes: object) -> RecordFields:
    f = RecordFields(
        user_id=7,
        mailbox_id=12,
        modseq=345,
        uidnext=60,
        exists=51,
        bits=0b10101,
        last_activity=1234.5,
        last_write=1240.25,
        tag="A0012",
        recent=array("I", [58, 59]),
        tls=("TLS_AES_128_GCM_SHA256", b"r" * 32, 3, b"w" * 32, 9),
    )
    for k, v in changes.items():
        setattr(f, k, v)
    return f


@given(
    tag=st.text(min_size=1, max_size=40),
    recent=st.lists(st.integers(0, 2**32 - 1), max_size=50),
    modseq=st.integers(0, 2**63),
    tls=st.booleans(),
)
def test_records_survive_the_trip(tag: str, recent: list[int], modseq: int, tls: bool) -> None:
    f = fields(tag=tag, recent=array("I", recent), modseq=modseq)
    if not tls:
        f.tls = None
    assert decode_record(encode_record(f)) == f
    assert decode_batch(encode_batch([encode_record(f)] * 3)) == [f] * 3


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"XX",
        encode_batch([encode_record(fields())])[:-1],  # truncated
        encode_batch([encode_record(fields()) + b"!"]),  # trailing bytes in a record
        encode_batch([encode_record(fields())]) + b"\x01",  # half a length
        encode_batch([encode_record(fields(tls=None))[:30]]),
    ],
)
def test_malformed_batches_are_refused(wire: bytes) -> None:
    with pytest.raises(ValueError):
        decode_batch(wire)


class _Loop:
    """Just enough of an event loop for ``Homes.start``: the reader, called by hand."""

    def __init__(self) -> None:
        self.readers: dict[int, object] = {}

    def add_reader(self, fd: int, cb: object) -> None:
        self.readers[fd] = cb

    def remove_reader(self, fd: int) -> None:
        self.readers.pop(fd, None)

    def is_closed(self) -> bool:
        return False


@pytest.fixture
def links() -> Iterator[HomeLinks]:
    made = HomeLinks.make(2)
    yield made
    made.close()


def test_a_socket_and_its_record_reach_the_home_worker(links: HomeLinks) -> None:
    sender, home = Homes(0, links.channels, links.loads), Homes(1, links.channels, links.loads)
    got: list[tuple[RecordFields, int]] = []
    loop = _Loop()
    home.start(loop, got.extend)  # type: ignore[arg-type]
    a, b = socket.socketpair()
    assert sender.send(1, [encode_record(fields())], [a.fileno()])
    a.close()  # the sender's copy: the one in flight is the home's now
    home._on_readable()
    assert len(got) == 1 and got[0][0] == fields()
    moved = socket.socket(fileno=got[0][1])
    moved.sendall(b"* 1 EXISTS\r\n")
    assert b.recv(100) == b"* 1 EXISTS\r\n"
    moved.close()
    b.close()
    home.close()
    assert not loop.readers


def test_a_malformed_batch_closes_its_sockets(links: HomeLinks) -> None:
    home = Homes(1, links.channels, links.loads)
    got: list[tuple[RecordFields, int]] = []
    home.start(_Loop(), got.extend)  # type: ignore[arg-type]
    a, b = socket.socketpair()
    # Two records for one socket: nothing may be adopted, and the socket is closed.
    batch = encode_batch([encode_record(fields())] * 2)
    socket.send_fds(links.channels[1][1], [batch], [a.fileno()])
    a.close()
    home._on_readable()
    assert got == []
    b.settimeout(5)
    assert b.recv(10) == b""  # the in-flight copy was closed: the peer sees EOF
    b.close()


def test_a_full_home_is_sent_nothing(links: HomeLinks) -> None:
    sender = Homes(0, links.channels, links.loads)
    assert sender.can_take(1, 1)
    links.loads.set(1, sender._full_at)
    assert not sender.can_take(1, 1)


# --------------------------------------------------------------- two workers, one process


class Worker:
    """One worker's IMAP side (context, hub, hibernator, homes) on a shared loop."""

    def __init__(
        self,
        index: int,
        links: HomeLinks,
        runner: StoreRunner,
        bus: LocalBus,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.ctx = ImapContext(
            info=ServerInfo("localhost", False, "test"),
            runner=runner,
            hub=IdleHub(bus, loop),
            publisher=bus,
            limits=Limits(auth_failure_delay=0.01),
            tls=None,
            auth_pool=ThreadPoolExecutor(max_workers=1),
            connections=set(),
        )
        self.hib = Hibernator(self.ctx, loop, ImapConnection)
        self.ctx.hibernator = self.hib
        self.homes = Homes(index, links.channels, links.loads)
        self.hib.homes = self.homes
        self.loop = loop

    async def listen(self) -> int:
        ctx = self.ctx
        self.server = await self.loop.create_server(
            lambda: ImapConnection(ctx, secure=False), "127.0.0.1", 0
        )
        return int(self.server.sockets[0].getsockname()[1])


Workers = tuple[Worker, Worker, StoreRunner, LocalBus, asyncio.AbstractEventLoop]


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Workers]:
    store = SqliteStore(tmp_path / "mail.db")
    user = store.create_user("alice@example.org", "{PLAIN}" + PASSWORD)
    assert user.id % 2 == 1  # alice's home is worker 1
    store.close()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = StoreRunner(lambda: SqliteStore(tmp_path / "mail.db"))
    bus = LocalBus()
    links = HomeLinks.make(2)
    workers = [Worker(i, links, runner, bus, loop) for i in range(2)]
    try:
        yield workers[0], workers[1], runner, bus, loop
    finally:

        async def stop() -> None:
            for w in workers:
                w.server.close()
                for conn in list(w.ctx.connections):
                    conn.close()
                w.hib.close(b"* BYE\r\n")
                w.ctx.auth_pool.shutdown(wait=False)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        runner.close()
        links.close()


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], T]) -> T:
    async def run() -> T:
        return fn()

    return asyncio.run_coroutine_threadsafe(run(), loop).result(10)


def _read_until(sock: socket.socket, want: bytes) -> bytes:
    buf = b""
    sock.settimeout(10)
    while want not in buf:
        chunk = sock.recv(4096)
        assert chunk, buf
        buf += chunk
    return buf


def _wait(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_delivery_while_the_socket_is_in_flight_is_not_missed(two_workers: Workers) -> None:
    away, home, runner, bus, loop = two_workers
    port = asyncio.run_coroutine_threadsafe(away.listen(), loop).result(10)
    asyncio.run_coroutine_threadsafe(home.listen(), loop).result(10)
    client = socket.create_connection(("127.0.0.1", port))
    _read_until(client, b"* OK")
    client.sendall(f"a LOGIN alice@example.org {PASSWORD}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
    _read_until(client, b"+ idling")
    # The session goes to sleep in worker 0 and leaves for worker 1, which does not
    # read its channel yet: the socket is in flight, in no worker's hub.
    _wait("moved out", lambda: away.hib.moved_out == 1)
    assert len(away.hib) == 0 and len(home.hib) == 0

    def deliver(st: Store) -> MailboxChanged:
        box = st.get_mailbox(1, "INBOX")
        assert box is not None
        raw = b"From: bob@example.org\r\nSubject: while in flight\r\n\r\nhi\r\n"
        app = st.append(box.id, NewMessage(raw, build_cache(raw), frozenset()))
        return MailboxChanged(1, app.mailbox_id, app.modseq, "new")

    bus.publish(runner.call_sync(deliver))  # heard by nobody
    _on_loop(loop, lambda: home.homes.start(loop, home.hib.adopt))
    got = _read_until(client, b"* 1 RECENT\r\n")
    assert got.startswith(b"* 1 EXISTS\r\n")  # the adopting worker's re-check found it
    assert home.hib.adopted == 1 and len(home.hib) == 1  # told without waking up
    client.sendall(b"DONE\r\n")
    _read_until(client, b"c OK")
    client.sendall(b"d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    assert b"while in flight" in _read_until(client, b"d OK")
    assert len(home.ctx.connections) == 1 and len(away.ctx.connections) == 0
    client.close()


def test_moves_are_cut_into_datagrams_by_count_and_by_size() -> None:
    from pushmail.net.homes import MAX_BATCH, MAX_DATAGRAM, batches

    small = [(object(), b"x" * 70) for _ in range(3 * MAX_BATCH + 5)]
    sizes = [len(c) for c in batches(small)]
    assert sizes == [MAX_BATCH, MAX_BATCH, MAX_BATCH, 5]
    big = [(object(), b"x" * 8000) for _ in range(20)]
    chunks = list(batches(big))
    assert sum(len(c) for c in chunks) == 20 and len(chunks) == 3
    assert all(sum(len(d) for _, d in c) < MAX_DATAGRAM + 8192 for c in chunks)
