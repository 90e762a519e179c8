"""What each serving process reports about itself, for operators and benchmarks.

Every worker measures its event-loop lag (how late a short timer fires: the time the
loop was busy with something else) and writes, every ``interval`` seconds, one small
JSON file ``<data_dir>/stats/worker-<n>.json`` (atomically replaced) with the worst lag
since start, the current connection counts and its pid. Reading them needs no
protocol and works with any number of workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

TICK = 0.05  # seconds between lag probes


class GcPauses:
    """How long the cyclic garbage collector stopped this process: the longest pause
    and the number of full (generation 2) collections. A full collection walks every
    tracked object, and a worker holds tens of thousands of hibernated records, so
    it is a likely cause of loop lag; this tells the two apart."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        self.max_ms = max(self.max_ms, (time.perf_counter() - self._start) * 1000)
        if info.get("generation") == 2:
            self.full += 1

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)


class LoopStats:
    def __init__(self, path: Path, counts: Callable[[], dict[str, int]], interval: float) -> None:
        self._path = path
        self._counts = counts
        self._interval = interval
        self.max_lag = 0.0
        self.started = time.time()
        self.gc = GcPauses()

    async def run(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        next_write = loop.time() + self._interval
        while True:
            before = loop.time()
            await asyncio.sleep(TICK)
            lag = loop.time() - before - TICK
            self.max_lag = max(self.max_lag, lag)
            if loop.time() >= next_write:
                next_write = loop.time() + self._interval
                self.write()

    def write(self) -> None:
        data = {
            "pid": os.getpid(),
            "time": time.time(),
            "max_loop_lag_ms": round(self.max_lag * 1000, 3),
            "max_gc_pause_ms": round(self.gc.max_ms, 3),
            "full_gc_runs": self.gc.full,
            **self._counts(),
        }
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._path)
