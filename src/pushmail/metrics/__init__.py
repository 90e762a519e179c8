"""Prometheus metrics and ``pushmail status`` (docs/operations.md, "Metrics").

Several worker processes serve at once, so the counters live in prometheus-client's
multi-process mode: each process writes its values to small memory-mapped files in
``<data-dir>/run/metrics`` and whoever answers a scrape (worker 0) merges the files
of all of them. The directory is chosen through the environment variable
``PROMETHEUS_MULTIPROC_DIR``, which prometheus-client reads when it is first
imported: so ``prepare`` runs before anything imports ``pushmail.metrics.series``
(``pushmail serve`` calls it first thing), and this package's ``__init__`` imports
nothing of prometheus-client.

- ``series``: every metric, in one table-like module.
- ``sampler``: per worker, the sessions by state and the event-loop lag.
- ``wakeup``: delivery → ``EXISTS`` latency, from the commit time a hint carries.
- ``exposition``: the merged text format, and a summary for ``pushmail status``.
- ``listener``: the HTTP listener for scrapes; ``status``: the status socket.
- ``service``: what ``server/serve.py`` starts and stops.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def run_dir(data_dir: Path) -> Path:
    """Files of the running server: the metrics directory, the status socket."""
    return data_dir / "run"


def metrics_dir(data_dir: Path) -> Path:
    return run_dir(data_dir) / "metrics"


def prepare(data_dir: Path) -> Path:
    """Empty ``<data-dir>/run/metrics`` (counters restart with the server, and files
    of a previous run's processes would be summed in) and point prometheus-client at
    it. Call before anything imports ``pushmail.metrics.series``."""
    path = metrics_dir(data_dir)
    if not _answering(run_dir(data_dir) / "status.sock"):
        # Not while another server runs on this directory: this one is about to
        # fail on its ports, and must not wipe the running one's figures first.
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.environ[ENV] = str(path)
    return path


def _answering(status_socket: Path) -> bool:
    """Whether a server listens on ``status_socket`` (pushmail.metrics.status)."""
    if not status_socket.exists() or len(os.fsencode(str(status_socket))) > 100:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(status_socket))
        except OSError:
            return False
    return True


def process_dead(pid: int) -> None:
    """A worker has exited: its live gauges (sessions, lag) leave the sums."""
    path = os.environ.get(ENV)
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
