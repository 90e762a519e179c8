"""Several pushmail nodes on PostgreSQL + NATS, against one node on SQLite, in one run:
LMTP deliveries per second, memory per idle IMAP session, and the database
connections each node holds (``pg_stat_activity``).

    .venv/bin/python bench/cluster.py [--nodes 1,2,3] [--users 200] [--deliveries 2000]
        [--sessions 500] [--connections 8] [--timeout 900]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--nats nats://127.0.0.1:4222]

Needs PostgreSQL (a server where the given role may create databases; each run
creates one and drops it) and NATS. Everything listens on 127.0.0.1; every figure is
bounded by the counts given and the whole run by ``--timeout``. Prints one JSON line
(progress on stderr) and appends it to ``bench/results/cluster.jsonl`` (not with
``--no-save``).

What is measured, per configuration (SQLite with 1 node, PostgreSQL + NATS with each
count of ``--nodes``), on fresh data:

- ``deliveries_per_s``: ``--deliveries`` messages (one recipient each, users in
  turn) sent over LMTP, the recipients split evenly over the nodes, each node fed by
  ``--connections`` concurrent connections; acknowledged 250s over the wall time.
- ``idle_kb_per_session``: ``--sessions`` IMAP sessions (LOGIN, SELECT INBOX, IDLE)
  spread evenly over the nodes; the growth of the nodes' summed PSS (and USS) over
  the sessions that idle.
- ``pg_connections``: per node, the most connections seen open during the deliveries
  (sampled every 50 ms) and those open once the sessions idle. Each node's store URL
  carries ``application_name=pushmail-node-N``, which is how they are told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import proctools
from idle_latency import plan_sessions, plan_users
from imap_idle_client import ClientPool
from lmtp_burst import BurstResult, _burst
from proctools import TreeMemory, tree_memory
from pushmail_server import PushmailInstance

MAX_DELIVERIES = 50_000
MAX_SESSIONS = 20_000
MAX_NODES = 4


def log(message: str) -> None:
    proctools.log("cluster", message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nodes", default="1,2,3", help="node counts on PostgreSQL + NATS")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--deliveries", type=int, default=2000)
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--connections", type=int, default=8, help="LMTP connections per node")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite reference")
    p.add_argument("--no-save", action="store_true", help="do not append to bench/results")
    args = p.parse_args(argv)
    args.node_counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    if not all(1 <= n <= MAX_NODES for n in args.node_counts):
        p.error(f"node counts must be 1..{MAX_NODES}")
    if not 0 < args.deliveries <= MAX_DELIVERIES or not 0 <= args.sessions <= MAX_SESSIONS:
        p.error(f"at most {MAX_DELIVERIES} deliveries and {MAX_SESSIONS} sessions")
    if args.users < 1:
        p.error("--users must be at least 1")
    return args


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database for one configuration; dropped afterwards."""
    import psycopg

    name = f"pushmail_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ConnectionSampler:
    """Counts the database's connections per ``application_name`` every 50 ms, on a
    thread of its own (its own connection is not counted)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.peak: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    def now(self) -> dict[str, int]:
        import psycopg

        database = urlsplit(self._url).path.lstrip("/")
        with psycopg.connect(self._url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND pid <> pg_backend_pid() AND application_name LIKE 'pushmail-node-%%'"
                " GROUP BY application_name",
                (database,),
            ).fetchall()
        return {str(name): int(n) for name, n in rows}

    def __enter__(self) -> ConnectionSampler:
        def run() -> None:
            while not self._stop.wait(0.05):
                for name, n in self.now().items():
                    self.peak[name] = max(self.peak.get(name, 0), n)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def node_config(store: str | None, bus: str | None) -> str:
    """TOML for one node: the shared store and bus, the push HTTP API off (its fixed
    port would collide between nodes) and no cap on pre-login connections per
    address (all clients come from 127.0.0.1)."""
    text = ""
    if store is not None:
        text += f'store = "{store}"\n'
    if bus is not None:
        text += f'bus = "{bus}"\n'
    return text + '[push]\nhttp = "off"\n[limits]\nmax_prelogin_per_address = 0\n'


def import_users(workdir: Path, config: Path, data_dir: Path, users: list[tuple[str, str]]) -> None:
    passwd = workdir / "passwd"
    passwd.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users))
    command = [sys.executable, "-m", "pushmail", "user", "import", str(passwd),
               "--data-dir", str(data_dir), "--config", str(config)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"pushmail user import failed: {result.stderr.strip()[-500:]}")


def deliver(nodes: list[PushmailInstance], users: list[tuple[str, str]], count: int,
            connections: int) -> BurstResult:  # fmt: skip
    """``count`` deliveries, the recipients split evenly over the nodes, all at once."""
    recipients = [users[i % len(users)][0] for i in range(count)]

    async def all_nodes() -> list[BurstResult]:
        shares = [recipients[j :: len(nodes)] for j in range(len(nodes))]
        return list(
            await asyncio.gather(
                *(
                    _burst(n.lmtp_port, s, connections, 1)
                    for n, s in zip(nodes, shares, strict=True)
                )
            )
        )

    started = time.monotonic()
    results = asyncio.run(all_nodes())
    seconds = time.monotonic() - started
    return BurstResult(
        [d for r in results for d in r.deliveries], [e for r in results for e in r.errors], seconds
    )


def memory(nodes: list[PushmailInstance]) -> TreeMemory:
    parts = [tree_memory(n.pid) for n in nodes]
    return TreeMemory(
        sum(p.processes for p in parts),
        sum(p.rss_kb for p in parts),
        sum(p.pss_kb for p in parts),
        sum(p.uss_kb for p in parts),
    )


def idle_sessions(nodes: list[PushmailInstance], users: list[tuple[str, str]], count: int,
                  pools: list[ClientPool]) -> dict[str, Any]:  # fmt: skip
    """Open ``count`` idling sessions spread over the nodes, through the node's own
    client pool (a pool's workers take one batch of sessions in their life: a
    second ``open`` on one pool would wait forever); memory per session."""
    if count == 0:
        return {"sessions_ready": 0}
    time.sleep(1.0)  # let the delivery burst's garbage settle before the baseline
    before = memory(nodes)
    sessions = plan_sessions(count, users)
    for j, (node, pool) in enumerate(zip(nodes, pools, strict=True)):
        pool.open("127.0.0.1", node.imap_port, sessions[j :: len(nodes)], timeout=120)
    ready = sum(len(pool.baseline) for pool in pools)
    time.sleep(1.0)
    grown = memory(nodes).minus(before)
    per = (lambda kb: round(kb / ready, 2)) if ready else (lambda kb: None)
    return {
        "sessions_ready": ready,
        "sessions_failed": sum(len(pool.failed) for pool in pools),
        "idle_kb_per_session": {"pss": per(grown.pss_kb), "uss": per(grown.uss_kb)},
    }


def run_config(kind: str, n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """One configuration on fresh data; always stops its nodes."""
    workdir = root / f"{kind}-{n}"
    workdir.mkdir()
    users = plan_users(args.users)
    figures: dict[str, Any] = {"store": kind, "nodes": n}
    with contextmanager_for(kind, args) as store_url:
        bus = None
        if kind == "postgresql":
            bus = f"{args.nats}?prefix=bench{secrets.token_hex(4)}"
        nodes = []
        for i in range(n):
            node_store = None
            if store_url is not None:
                node_store = f"{store_url}?application_name=pushmail-node-{i + 1}"
            nodes.append(
                PushmailInstance(
                    workdir / f"node-{i + 1}", [], config_text=node_config(node_store, bus)
                )
            )
        first = nodes[0]
        for node in nodes:  # each node keeps its own data directory (keys, sockets)
            node.data_dir.mkdir(parents=True)
        config = workdir / "import.toml"
        config.write_text(node_config(store_url, bus))
        import_users(workdir, config, first.data_dir, users)
        # One client process per node, started before the baseline is read.
        pools = [ClientPool(procs=1, concurrency=100) for _ in nodes]
        try:
            for node in nodes:
                node.log_path = workdir / f"{node.workdir.name}.log"
            # Side by side: each takes seconds to import and connect on a busy machine.
            for node in nodes:
                node.spawn()
            for node in nodes:
                node.wait_ready()
            for pool in pools:
                pool.spawn()
            sampler = ConnectionSampler(store_url) if store_url else None
            if sampler is not None:
                with sampler:
                    burst = deliver(nodes, users, args.deliveries, args.connections)
                figures["pg_connections_peak_delivering"] = sampler.peak
            else:
                burst = deliver(nodes, users, args.deliveries, args.connections)
            ok = len(burst.deliveries)
            figures |= {
                "delivered": ok,
                "delivery_errors": len(burst.errors),
                "deliveries_per_s": round(ok / burst.seconds, 1) if burst.seconds else None,
            }
            if burst.errors:
                figures["first_error"] = burst.errors[0]
            figures |= idle_sessions(nodes, users, args.sessions, pools)
            if sampler is not None:
                figures["pg_connections_idle"] = sampler.now()
        finally:
            for pool in pools:
                pool.close()
            for node in nodes:
                node.stop()
    log(json.dumps(figures))
    return figures


@contextmanager
def contextmanager_for(kind: str, args: argparse.Namespace) -> Iterator[str | None]:
    """The store URL of a configuration: a scratch database, or None for SQLite."""
    if kind == "sqlite":
        yield None
        return
    with scratch_database(args.postgres) as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    proctools.raise_nofile()
    deadline = time.monotonic() + args.timeout
    plan = ([] if args.no_sqlite else [("sqlite", 1)]) + [
        ("postgresql", n) for n in args.node_counts
    ]
    runs: list[dict[str, Any]] = []
    load_before = round(os.getloadavg()[0], 2)
    with TemporaryDirectory(prefix="pushmail-cluster-") as tmp:
        for kind, n in plan:
            if time.monotonic() > deadline:
                log(f"out of time before {kind} x{n}")
                runs.append({"store": kind, "nodes": n, "skipped": "timeout"})
                continue
            runs.append(run_config(kind, n, args, Path(tmp)))
    # The machine's load at both ends: nodes, clients and PostgreSQL share its CPUs.
    line = json.dumps({
        "bench": "cluster",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
        "load_avg_1m": [load_before, round(os.getloadavg()[0], 2)],
        "users": args.users,
        "deliveries": args.deliveries,
        "sessions": args.sessions,
        "connections_per_node": args.connections,
        "runs": runs,
    })  # fmt: skip
    print(line)
    if not args.no_save:
        with open(Path(__file__).resolve().parent / "results" / "cluster.jsonl", "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
