"""Per worker: what is sampled rather than counted.

Sessions by state are read from the structures that hold them (connections, the
idle hub, the hibernator) once a second, not counted at every change: a change of
state is on the hot path, a scrape is not, and a gauge set once a second costs
nothing there. The event-loop lag is probed every ``PROBE`` seconds, as
``server/loop_stats.py`` does for the stats file: how late a short sleep wakes up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pushmail.metrics.series import (
    LOOP_LAG,
    SESSION_STATES,
    SESSIONS,
    WORKER_CONNECTIONS,
    WORKER_LOOP_LAG,
    WORKER_SESSIONS,
    WORKER_STARTED,
)

PROBE = 0.1  # seconds between lag probes
SAMPLE = 1.0  # seconds between samples of the session gauges


@dataclass(frozen=True, slots=True)
class SessionCounts:
    active: int  # IMAP connections not in IDLE (logging in, running commands, idle between)
    idling: int  # full connections in IDLE
    hibernated: int  # IDLE sessions reduced to a record (net/hibernate.py)
    connections: int  # every descriptor-holding connection of the worker


class Sampler:
    def __init__(self, worker: int, counts: Callable[[], SessionCounts]) -> None:
        self._counts = counts
        w = str(worker)
        self._per_worker = {s: WORKER_SESSIONS.labels(w, s) for s in SESSION_STATES}
        self._totals = {s: SESSIONS.labels(s) for s in SESSION_STATES}
        self._connections = WORKER_CONNECTIONS.labels(w)
        self._lag = WORKER_LOOP_LAG.labels(w)
        WORKER_STARTED.labels(w).set(time.time())

    def sample(self, worst_lag: float) -> None:
        c = self._counts()
        for state, n in (("active", c.active), ("idling", c.idling), ("hibernated", c.hibernated)):
            self._per_worker[state].set(n)
            self._totals[state].set(n)
        self._connections.set(c.connections)
        self._lag.set(worst_lag)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        worst, next_sample = 0.0, loop.time()
        while True:
            if loop.time() >= next_sample:
                self.sample(worst)
                worst, next_sample = 0.0, loop.time() + SAMPLE
            before = loop.time()
            await asyncio.sleep(PROBE)
            lag = max(0.0, loop.time() - before - PROBE)
            LOOP_LAG.observe(lag)
            worst = max(worst, lag)
