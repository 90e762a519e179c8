"""Issue 15 item 3: when ``accept()`` fails for lack of descriptors, the acceptor
stops after that one call, pauses every listener, and logs once; asyncio's own loop
went on through its whole backlog (4,096 failing calls, log lines and timers per
wake-up)."""

from __future__ import annotations

import asyncio
import errno
import socket

from pushmail.transport.acceptor import Acceptor, listening_sockets
from pushmail.transport.conncap import ExhaustionLog


class _Exhausted:
    """A listening socket whose ``accept()`` fails as with no descriptor left."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.real.close()


def test_exhaustion_pauses_accepting_and_logs_once() -> None:
    async def run() -> tuple[int, int, int, bool, bool]:
        loop = asyncio.get_running_loop()
        real = listening_sockets("127.0.0.1", 0, False, 16)[0]
        fake = _Exhausted(real)
        exhaustion = ExhaustionLog(loop, every=60.0)
        acceptor = Acceptor(loop, asyncio.Protocol, [fake], exhaustion, pause=60.0)  # type: ignore[list-item]
        acceptor.start()
        clients = [socket.create_connection(real.getsockname()) for _ in range(3)]
        await asyncio.sleep(0.1)  # one wake-up: one failing call, then paused
        first = fake.calls
        paused = not loop.remove_reader(real.fileno())  # False: no reader was set
        await asyncio.sleep(0.2)  # still paused: no more calls
        assert fake.calls == first
        acceptor._resume()  # what the pause's timer does
        await asyncio.sleep(0.1)  # one more failing call, paused again
        second = fake.calls
        acceptor.close()
        for c in clients:
            c.close()
        return first, second, exhaustion.reported, paused, exhaustion.suppressed > 0

    first, second, reported, paused, suppressed = asyncio.run(run())
    assert first == 1  # not the whole backlog
    assert paused
    assert second == 2
    assert reported == 1 and suppressed  # the second failure was not logged
