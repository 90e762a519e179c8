"""Each listening process is sent only the hints it listens for (events/interest.py)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from pushmail.events import interest, unixsock
from pushmail.events.interest import InterestReader, InterestWriter
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.unixsock import UnixSocketBus, UnixSocketPublisher, decode_datagram


@pytest.fixture(autouse=True)
def fresh_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unixsock, "LISTING_TTL", 0.0)


def _peer(directory: Path, name: str) -> socket.socket:
    directory.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(directory / f"{name}{unixsock.SUFFIX}"))
    sock.setblocking(False)
    return sock


def _received(sock: socket.socket) -> list[MailboxChanged]:
    out: list[MailboxChanged] = []
    while True:
        try:
            out += decode_datagram(sock.recv(65536))
        except BlockingIOError:
            return out


def _events(*users: int) -> list[MailboxChanged]:
    return [MailboxChanged(u, 1, 10 + u, "new") for u in users]


def test_a_peer_gets_the_users_it_listens_for(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    plain, picky = _peer(ev, "plain"), _peer(ev, "picky")
    writer = InterestWriter()
    writer.add(7)
    writer.add(interest.BUCKETS + 9)  # shares a bucket with 9: 9 is sent too, harmless
    writer.attach(ev / f"picky{interest.SUFFIX}")
    publisher = UnixSocketPublisher(ev)
    try:
        publisher.publish_many(_events(1, 7, 8, 9))
        assert _received(plain) == _events(1, 7, 8, 9)  # no interest file: everything
        assert _received(picky) == _events(7, 9)

        publisher.publish_many(_events(1, 2))
        assert _received(picky) == []  # nothing for it: not even a datagram
        writer.add(2)
        publisher.publish_many(_events(1, 2))
        assert _received(picky) == _events(2)
        writer.remove(2)
        writer.remove(2)  # more removes than adds cannot wrap around
        writer.add_all()  # someone listens to everyone (the push engine)
        publisher.publish_many(_events(3))
        assert _received(picky) == _events(3)
        writer.remove_all()
        publisher.publish_many(_events(3, 7))
        assert _received(picky) == _events(7)
    finally:
        publisher.close()
        writer.close()
        plain.close()
        picky.close()
    assert not (ev / f"picky{interest.SUFFIX}").exists()


def test_an_unfinished_or_foreign_file_means_everything(tmp_path: Path) -> None:
    short = tmp_path / "short.interest"
    short.write_bytes(b"\0" * 100)
    assert InterestReader.open(short) is None
    assert InterestReader.open(tmp_path / "missing.interest") is None
    blank = tmp_path / "blank.interest"  # the right size but never initialised
    blank.write_bytes(b"\0" * (8 + 2 * interest.BUCKETS))
    reader = InterestReader.open(blank)
    assert reader is not None and not reader.filters()
    reader.close()


def test_buses_send_each_other_only_what_is_listened_for(tmp_path: Path) -> None:
    """Three buses in one directory: a hint reaches the bus with a listener for its
    user; the other bus, with no listener, is sent nothing at all."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        buses = [UnixSocketBus(tmp_path / "ev") for _ in range(3)]
        heard: list[MailboxChanged] = []
        wakeups = [0, 0, 0]
        try:
            for i, bus in enumerate(buses):
                bus.start(loop)
                readable = bus._on_readable

                def counted(i: int = i, readable: object = readable) -> None:
                    wakeups[i] += 1
                    readable()  # type: ignore[operator]

                assert bus._sock is not None
                loop.remove_reader(bus._sock.fileno())
                loop.add_reader(bus._sock.fileno(), counted)
            leave = buses[1].subscribe(5, heard.append)
            buses[0].publish_many(_events(5, 6))
            async with asyncio.timeout(5):
                while not heard:
                    await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
            assert heard == _events(5)
            assert wakeups[2] == 0
            leave()
            leave()  # twice: counted down once
            buses[0].publish_many(_events(5))
            await asyncio.sleep(0.05)
            assert heard == _events(5) and wakeups[1] == 1
        finally:
            for bus in buses:
                bus.close()
        assert list((tmp_path / "ev").iterdir()) == []

    asyncio.run(main())
