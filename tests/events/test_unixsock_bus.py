"""Cross-process hints over Unix datagram sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from pushmail.events import unixsock
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.unixsock import (
    UnixSocketBus,
    UnixSocketPublisher,
    decode_datagram,
    encode_batches,
)

PUBLISH = """
import sys
from pathlib import Path
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.unixsock import UnixSocketPublisher
pub = UnixSocketPublisher(Path(sys.argv[1]))
pub.publish(MailboxChanged(5, 6, 7, "new"))
pub.close()
"""


def in_loop(fn: Callable[[Path], Coroutine[Any, Any, None]]) -> Callable[[Path], None]:
    """Run an async test body on a fresh event loop (no pytest async plugin)."""

    def run(tmp_path: Path) -> None:
        asyncio.run(fn(tmp_path))

    run.__doc__ = fn.__doc__
    return run


async def wait_for(got: list[MailboxChanged], count: int) -> None:
    async with asyncio.timeout(5):
        while len(got) < count:
            await asyncio.sleep(0.005)


@pytest.fixture(autouse=True)
def fresh_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start listeners and publish at once; do not wait for a re-list."""
    monkeypatch.setattr(unixsock, "LISTING_TTL", 0.0)


def test_batches_round_trip() -> None:
    events = [MailboxChanged(u, u * 2, u * 3, "flags") for u in range(2000)]
    batches = list(encode_batches(events))
    assert len(batches) > 1
    assert all(len(b) <= unixsock.MAX_DATAGRAM for b in batches)
    assert [e for b in batches for e in decode_datagram(b)] == events
    assert decode_datagram(b"junk\n1 2 3 new\n\xff\n1 2 x new") == [MailboxChanged(1, 2, 3)]
    assert list(encode_batches([])) == []


@in_loop
async def test_two_buses_hear_each_other(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    one, two = UnixSocketBus(tmp_path / "ev"), UnixSocketBus(tmp_path / "ev")
    one.start(loop)
    two.start(loop)
    heard_one: list[MailboxChanged] = []
    heard_two: list[MailboxChanged] = []
    other_user: list[MailboxChanged] = []
    one.subscribe(1, heard_one.append)
    two.subscribe(1, heard_two.append)
    two.subscribe(2, other_user.append)
    event = MailboxChanged(1, 3, 9, "new")
    one.publish(event)
    assert heard_one == [event]  # local dispatch is immediate
    await wait_for(heard_two, 1)
    assert heard_two == [event] and other_user == []
    await asyncio.sleep(0.05)
    assert heard_one == [event]  # a bus does not hear its own datagram
    one.close()
    two.close()
    assert list((tmp_path / "ev").iterdir()) == []


@in_loop
async def test_publisher_in_another_process(tmp_path: Path) -> None:
    bus = UnixSocketBus(tmp_path / "ev")
    bus.start(asyncio.get_running_loop())
    got: list[MailboxChanged] = []
    bus.subscribe(5, got.append)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISH, str(tmp_path / "ev"))
    assert await proc.wait() == 0
    await wait_for(got, 1)
    assert got == [MailboxChanged(5, 6, 7, "new")]
    bus.close()


@in_loop
async def test_many_events_survive_a_short_socket_queue(tmp_path: Path) -> None:
    bus = UnixSocketBus(tmp_path / "ev")
    bus.start(asyncio.get_running_loop())
    got: list[MailboxChanged] = []
    bus.subscribe(1, got.append)
    publisher = UnixSocketPublisher(tmp_path / "ev")
    events = [MailboxChanged(1, 1, n) for n in range(3000)]  # far beyond 10 datagrams
    publisher.publish_many(events)
    await wait_for(got, 3000)
    assert got == events
    publisher.close()
    bus.close()


def test_stale_socket_files_are_removed(tmp_path: Path) -> None:
    events_dir = tmp_path / "ev"
    events_dir.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(events_dir / "1-dead.sock"))
    dead.close()  # file stays, nobody reads: ECONNREFUSED
    (events_dir / "2-never.sock").touch()  # not even a socket
    (events_dir / "notes.txt").touch()  # ignored: wrong suffix
    publisher = UnixSocketPublisher(events_dir)
    publisher.publish(MailboxChanged(1, 1, 1))
    assert sorted(p.name for p in events_dir.iterdir()) == ["notes.txt"]
    publisher.close()


def test_publish_with_no_directory_is_harmless(tmp_path: Path) -> None:
    publisher = UnixSocketPublisher(tmp_path / "missing")
    publisher.publish(MailboxChanged(1, 1, 1))
    publisher.close()


@in_loop
async def test_full_receiver_drops_instead_of_blocking(tmp_path: Path) -> None:
    bus = UnixSocketBus(tmp_path / "ev")
    bus.start(asyncio.get_running_loop())  # never yields to the loop below: queue fills
    publisher = UnixSocketPublisher(tmp_path / "ev")
    for n in range(200):
        publisher.publish(MailboxChanged(1, 1, n))  # must return, not block
    assert bus.socket_path.exists()  # a full peer is not mistaken for a dead one
    publisher.close()
    bus.close()


@in_loop
async def test_deep_directory_uses_a_short_address(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "ev"
    bus = UnixSocketBus(deep)
    bus.start(asyncio.get_running_loop())
    assert bus.socket_path.exists() and len(str(bus.socket_path)) > 108
    got: list[MailboxChanged] = []
    bus.subscribe(1, got.append)
    publisher = UnixSocketPublisher(deep)
    publisher.publish(MailboxChanged(1, 2, 3))
    await wait_for(got, 1)
    publisher.close()
    bus.close()
    assert not bus.socket_path.exists()


@in_loop
async def test_publish_from_another_thread_runs_listeners_on_the_loop(tmp_path: Path) -> None:
    bus = UnixSocketBus(tmp_path / "ev")
    bus.start(asyncio.get_running_loop())
    threads: list[int] = []
    bus.subscribe(1, lambda e: threads.append(threading.get_ident()))
    worker = threading.Thread(target=bus.publish, args=(MailboxChanged(1, 1, 1),))
    worker.start()
    worker.join()
    async with asyncio.timeout(5):
        while not threads:
            await asyncio.sleep(0.005)
    assert threads == [threading.get_ident()]
    bus.close()


def test_subprocess_publisher_exit_code(tmp_path: Path) -> None:
    """The publisher needs no loop and no listener to exist."""
    done = subprocess.run([sys.executable, "-c", PUBLISH, str(tmp_path)], check=False)
    assert done.returncode == 0


@in_loop
async def test_busy_receiver_gets_every_hint_later(tmp_path: Path) -> None:
    """A peer whose queue is full (its loop busy) gets the hints once it reads
    again: the sending bus keeps them and retries from its loop, in order."""
    sender = UnixSocketBus(tmp_path / "ev")
    sender.start(asyncio.get_running_loop())
    receiver = UnixSocketBus(tmp_path / "ev")
    got: list[MailboxChanged] = []
    receiver.subscribe(7, got.append)
    receiver.start(asyncio.get_running_loop())
    # One event per publish: far more datagrams than the receiver's queue holds,
    # all sent before the loop lets the receiver read anything.
    events = [MailboxChanged(7, n, n) for n in range(1, 301)]
    for event in events:
        sender.publish(event)
    await wait_for(got, len(events))
    assert got == events
    sender.close()
    receiver.close()


def test_one_shot_publisher_flushes_a_busy_peer(tmp_path: Path) -> None:
    """``pushmail deliver`` has no loop: flush() retries while the peer drains."""
    events_dir = tmp_path / "ev"
    events_dir.mkdir()
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(str(events_dir / "1-peer.sock"))
    publisher = UnixSocketPublisher(events_dir)
    for n in range(1, 101):
        publisher.publish(MailboxChanged(1, n, n))
    received: list[MailboxChanged] = []

    def drain() -> None:
        peer.settimeout(2)
        while len(received) < 100:
            received.extend(decode_datagram(peer.recv(65536)))

    reader = threading.Thread(target=drain)
    reader.start()
    publisher.flush(timeout=5)
    reader.join(5)
    assert [e.mailbox_id for e in received] == list(range(1, 101))
    publisher.close()
    peer.close()
