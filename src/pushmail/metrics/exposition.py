"""The metrics of all workers, merged: as Prometheus text, and summed up for
``pushmail status``.

Reading the files of every worker takes a few milliseconds, so callers on an event
loop run these in a thread (``listener.py``, ``status.py``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from pushmail.metrics import ENV
from pushmail.metrics.series import REGISTRY, SESSION_STATES


def source() -> Collector:
    """All processes' files in multi-process mode; else this process's registry
    (a server run inside another program, such as a test)."""
    path = os.environ.get(ENV)
    if getattr(values.ValueClass, "_multiprocess", False) and path and os.path.isdir(path):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render() -> bytes:
    return generate_latest(source())


def _samples(collector: Collector) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → [(labels, value)] (names as exposed: ``_total``, ``_count``...)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in collector.collect():
        for s in family.samples:
            out[s.name].append((dict(s.labels), s.value))
    return out


def summary() -> dict[str, Any]:
    """What ``pushmail status`` shows: workers, sessions per state, listeners, the
    alert queue, and a few totals since the server started."""
    samples = _samples(source())

    def total(name: str, **match: str) -> int:
        return int(sum(v for labels, v in samples.get(name, []) if match.items() <= labels.items()))

    workers: dict[str, dict[str, Any]] = {}

    def worker(labels: dict[str, str]) -> dict[str, Any]:
        key = labels.get("pid", labels["worker"])
        return workers.setdefault(
            key,
            {"worker": int(labels["worker"]), "pid": int(labels.get("pid", os.getpid()))},
        )

    for labels, v in samples.get("pushmail_worker_start_time_seconds", []):
        worker(labels)["started"] = v
    for labels, v in samples.get("pushmail_worker_sessions", []):
        worker(labels).setdefault("sessions", {})[labels["state"]] = int(v)
    for labels, v in samples.get("pushmail_worker_connections", []):
        worker(labels)["connections"] = int(v)
    for labels, v in samples.get("pushmail_worker_loop_lag_seconds", []):
        worker(labels)["loop_lag_ms"] = round(v * 1000, 1)
    info = samples.get("pushmail_listener_info", [])
    listeners = sorted({(lab["service"], lab["address"]) for lab, v in info if v})
    versions = [lab["version"] for lab, v in samples.get("pushmail_build_info", []) if v]
    return {
        "version": versions[0] if versions else None,
        "workers": sorted(workers.values(), key=lambda w: (w["worker"], w["pid"])),
        "sessions": {s: total("pushmail_sessions", state=s) for s in SESSION_STATES},
        "listeners": [{"service": s, "address": a} for s, a in listeners],
        "alert_queue": total("pushmail_alert_queue"),
        "totals": {
            "connections": total("pushmail_connections_total"),
            "logins": total("pushmail_logins_total", result="ok"),
            "failed_logins": total("pushmail_logins_total", result="failed"),
            "imap_commands": total("pushmail_imap_command_seconds_count"),
            "recipients_stored": total("pushmail_delivery_recipients_total", outcome="stored"),
            "alerts_sent": total("pushmail_alerts_total", outcome="ok"),
            "store_errors": total("pushmail_store_errors_total"),
            "bus_errors": total("pushmail_bus_errors_total"),
        },
    }
