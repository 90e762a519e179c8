"""IdleHub.recheck: what the bus calls when hints may have been missed (issue 17)."""

from __future__ import annotations

import asyncio

from pushmail.events.local import LocalBus
from pushmail.net.idle_hub import IdleHub


class Idler:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


def test_recheck_wakes_the_idlers_of_the_users_named_or_all() -> None:
    async def main() -> None:
        bus = LocalBus()
        hub = IdleHub(bus, asyncio.get_running_loop())
        a1, a2, b, c = Idler(), Idler(), Idler(), Idler()
        hub.add(1, 10, a1)
        hub.add(1, 11, a2)  # same user, another mailbox
        hub.add(2, 20, b)
        hub.add(3, 30, c)
        hub.recheck(frozenset({1, 99}))  # 99: nobody idles for that user here
        assert (a1.wakes, a2.wakes, b.wakes, c.wakes) == (1, 1, 0, 0)
        hub.remove(3, 30, c)
        hub.recheck(None)
        assert (a1.wakes, a2.wakes, b.wakes, c.wakes) == (2, 2, 1, 0)

    asyncio.run(main())
