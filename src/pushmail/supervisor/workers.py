"""Several serving processes on the same ports.

Why processes: one Python process uses one core, and may hold only so many file
descriptors (20,000 on our test machine), so 100,000 idle clients need several. Each
worker is a complete server (listeners, store thread, bus socket, IDLE hub); they
share the SQLite file, the ports, and the socket pairs over which a session that goes
to sleep moves to its user's home worker (``net/homes.py``). Each binds its listeners
with ``SO_REUSEPORT`` so the kernel spreads new connections over them evenly, and a
delivery taken by any worker reaches idlers in all of them through the Unix-datagram
bus (``events/unixsock.py``).

Workers are forked after the parent has done the one-time work (certificate, schema
migration) and before any thread or event loop exists, so they start fast and share
the interpreter's pages copy-on-write. The parent only supervises: it forwards
SIGTERM/SIGINT and restarts a worker that died, with a delay that grows if it keeps
dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from pathlib import Path

from pushmail.config import Config
from pushmail.imap.structure import STRUCTURE_VERSION, build_cache
from pushmail.metrics import process_dead
from pushmail.net.homes import HomeLinks
from pushmail.server.serve import serve
from pushmail.store.factory import open_store, sqlite_path
from pushmail.store.sqlite_refresh import refresh_structures
from pushmail.transport.tls import ensure_certificate

log = logging.getLogger("pushmail.workers")

_RESTART_DELAY_MAX = 30.0


def worker_count(config: Config) -> int:
    return config.workers if config.workers > 0 else (os.cpu_count() or 1)


def run_server(config: Config) -> None:
    """Serve until SIGTERM/SIGINT: in this process, or in forked workers."""
    n = worker_count(config)
    if n <= 1:
        _refresh_structures(config)
        asyncio.run(serve(config))
        return
    _prepare(config)
    Supervisor(config, n).run()


def _refresh_structures(config: Config) -> None:
    """Stored ENVELOPE/BODYSTRUCTURE computed by older code are redone once."""
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    path = sqlite_path(config.store_url)
    # PostgreSQL keeps no structure version: `pushmail migrate` refreshes its source.
    if path is not None:
        refresh_structures(path, STRUCTURE_VERSION, build_cache)


def _prepare(config: Config) -> None:
    """Work that must happen once, before any worker starts."""
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    if not (config.tls_cert and config.tls_key):
        ensure_certificate(Path(config.data_dir), config.hostname)
    open_store(config.store_url).close()  # creates or migrates the schema
    _refresh_structures(config)


class Supervisor:
    def __init__(self, config: Config, n: int) -> None:
        self._config = config
        self._n = n
        self._children: dict[int, int] = {}  # pid -> worker index
        self._stopping = False
        self._failures = [0] * n
        # Made once and kept open here, so a worker started again reads on from the
        # same channel (and adopts the sessions that were in flight to it).
        self._links = HomeLinks.make(n)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # Everything imported and built so far lives as long as the workers: move it
        # out of the collector's reach, so that no worker's full collection walks it
        # (hundreds of ms with 14 processes on 2 cores, measured) or writes to its
        # pages, which the workers then keep sharing with this process.
        gc.freeze()
        for i in range(self._n):
            self._spawn(i)
        log.info("started %d worker processes", self._n)
        while self._children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = self._children.pop(pid, None)
            process_dead(pid)  # its live gauges leave the metrics' sums
            if index is None or self._stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            self._failures[index] += 1
            delay = min(_RESTART_DELAY_MAX, 0.5 * 2 ** (self._failures[index] - 1))
            log.error(
                "worker %d (pid %d) exited with %d; restarting in %.1fs", index, pid, code, delay
            )
            time.sleep(delay)
            if not self._stopping:
                self._spawn(index)

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid:
            self._children[pid] = index
            return
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            asyncio.run(serve(self._config, worker=index, workers=self._n, links=self._links))
        except BaseException:
            log.exception("worker %d failed", index)
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)
