"""Very many idle IMAP sessions: what each costs, and how fast they hear of new mail.

For each N: park N sessions in LOGIN -> SELECT INBOX -> IDLE on U users
(session i watches user i mod U), from client processes of at most ``--per-process``
sessions each, each connecting from its own 127.0.0.x address; plaintext IMAP, or with
``--tls`` implicit TLS to the server's IMAPS port (pushmail's self-signed certificate;
Dovecot with ``ssl = required``). Then measure:

* the connect storm (sessions idling per second, and both sides' CPU time meanwhile,
  to show the client was not the bottleneck);
* server memory per idle session (RSS, PSS and USS over all server processes, minus
  the reading before the first session) and the kernel's TCP socket memory;
* a hold of ``--hold`` seconds, counting the sessions the server closed;
* single-user latency: M messages over LMTP, one user each, ``--spacing-ms`` apart,
  timed from each 250 to each of that user's N/U sessions hearing EXISTS;
* broadcast: one message to each of the U users (at most ``--broadcast-users``) over
  several LMTP connections at once, timed from each recipient's 250 to each EXISTS,
  plus how long the deliveries themselves took;
* missed notifications, dropped sessions, and (pushmail) each worker's worst event-loop
  lag from its stats file.

The same run is then made against a private Dovecot with imap-hibernate at
``--dovecot-n`` sessions, and its line carries the ratios to the pushmail run at the
same N (above 1: pushmail is better). One JSON line per run on stdout; progress on
stderr. Nothing passes or fails on time; the exit status is 1 only if a run could not
be measured at all (its line holds ``"error"``).
"""

from __future__ import annotations

import argparse
import imaplib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dovecot
import proctools
from idle_latency import (
    DOMAIN,
    BenchServer,
    Delivery,
    OverallTimeout,
    _on_signal,
    deliver,
    latency_figures,
    match_latencies,
    plan_sessions,
    plan_users,
    warm_up,
)
from imap_idle_client import ClientPool, SessionSpec, client_context
from lmtp_burst import burst
from proctools import TreeMemory, cpu_seconds, slab_kb, tcp_socket_memory_kb, tree_memory
from pushmail_server import PushmailInstance

Figures = dict[str, object]


def log(message: str) -> None:
    proctools.log("idle_scale", message)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One measured run: which server, how many sessions over how many users."""

    server: str  # "pushmail" or "dovecot"
    n: int
    users: int
    fill: int  # messages put in each INBOX before the run
    workers: int  # pushmail ``serve --workers``; 0 for Dovecot
    client_procs: int

    @property
    def sources(self) -> list[str]:
        """One loopback source address per client process (127.0.0.10, .11, ...)."""
        return [f"127.0.0.{10 + i}" for i in range(self.client_procs)]


def plan_run(server: str, n: int, args: argparse.Namespace) -> RunPlan:
    """U = --users, else min(--broadcast-users, N / --devices): every user has at least
    ``--devices`` idling sessions, and the broadcast reaches every session."""
    users = args.users or max(1, min(args.broadcast_users, n // max(1, args.devices)))
    per = args.per_process
    workers = 0
    if server == "pushmail":
        # As an operator would run it (``workers = 0``: one per CPU; Dovecot, too,
        # spreads LMTP and logins over processes), and enough for the fd limit.
        workers = args.workers or max(os.cpu_count() or 1, math.ceil(n / per))
    return RunPlan(server, n, min(users, n), args.fill, workers, max(1, math.ceil(n / per)))


def fill_mailboxes(data_dir: Path, users: list[tuple[str, str]], count: int) -> float:
    """Put *count* small messages in each user's INBOX through the store API (one
    process, large transactions, one shared body per chunk); return the seconds taken.

    Why in-process: delivering 10,000 messages each to 100 users over LMTP would take
    far longer than the run it prepares, and the server's per-session memory must be
    shown not to depend on mailbox size, not how fast mailboxes fill.
    """
    from pushmail.imap.structure import build_cache
    from pushmail.store.factory import open_store, sqlite_url
    from pushmail.store.interfaces import NewMessage

    started = time.monotonic()
    raw = (
        f"From: bench <bench@{DOMAIN}>\r\nTo: <inbox@{DOMAIN}>\r\nSubject: filler\r\n"
        f"Message-ID: <filler@{DOMAIN}>\r\n\r\nfiller\r\n"
    ).encode()
    message = NewMessage(raw, build_cache(raw))
    store = open_store(sqlite_url(data_dir / "pushmail.sqlite3"))
    try:
        targets = []
        for address, _ in users:
            user = store.get_user(address)
            mailbox = None if user is None else store.get_mailbox(user.id, "INBOX")
            if mailbox is None:
                raise RuntimeError(f"no INBOX for {address}")
            targets += [(mailbox.id, message)] * count
        for start in range(0, len(targets), 50_000):
            store.deliver(targets[start : start + 50_000])
    finally:
        store.close()
    return time.monotonic() - started


def make_server(plan: RunPlan, args: argparse.Namespace, workdir: Path) -> BenchServer:
    """Create (not start) the server of *plan* with its users and mailboxes."""
    users = plan_users(plan.users)
    workdir.mkdir(parents=True)
    if plan.server == "dovecot":
        return dovecot.DovecotInstance(
            workdir, users, plan.n, args.dovecot_hibernate, login_processes=2, tls=args.tls
        )
    inst = PushmailInstance(workdir, users, workers=plan.workers, tls=args.tls)
    inst.log_path = workdir / "server.log"
    inst.config_text = pushmail_config(args.server_log_level)
    if args.no_home_workers:  # for A/B runs: every session stays where it was accepted
        inst.config_text += "[imap_settings]\nhome_workers = false\n"
    inst.import_users()
    if plan.fill:
        seconds = fill_mailboxes(inst.data_dir, users, plan.fill)
        log(f"filled {plan.users} INBOXes with {plan.fill} messages each in {seconds:.1f}s")
    return inst


def pushmail_config(log_level: str | None = None) -> str:
    """The TOML for the measured server: the push HTTP API off, no cap on pre-login
    connections per address, and the log level.

    Why: the push listener has a fixed default port (8443), so a second pushmail on
    the machine would make worker 0 fail to start; IMAP idling is what is measured.
    Each client process stands in for thousands of devices from one 127.0.0.x
    address and sets up ``--concurrency`` (400) sessions at once, past the default
    ``limits.max_prelogin_per_address`` (100): with the cap, a quarter of the
    sessions at N = 10,000 got ``* BYE too many connections from your address``.
    """
    from pushmail.config import Config

    fields = Config.__dataclass_fields__
    text = f'log_level = "{log_level}"\n' if log_level else ""
    text += '[push]\nhttp = "off"\n' if "push" in fields else ""
    return text + ("[limits]\nmax_prelogin_per_address = 0\n" if "limits" in fields else "")


def run_one(plan: RunPlan, args: argparse.Namespace, workdir: Path) -> Figures:
    """Measure one run; always stops its server and clients."""
    fig: Figures = {
        "bench": "idle_scale",
        "server": plan.server,
        "n": plan.n,
        "tls": bool(args.tls),
        "users": plan.users,
        "devices_per_user": round(plan.n / plan.users, 2),
        "fill": plan.fill,
        "client_procs": plan.client_procs,
        "hold_s": args.hold,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    server = make_server(plan, args, workdir)
    if isinstance(server, PushmailInstance):
        fig |= {
            "workers": plan.workers,
            "home_workers": not args.no_home_workers,
            "user_import_s": round(server.user_add_seconds, 2),
        }
    pool = ClientPool(plan.client_procs, args.concurrency, plan.sources, tls=args.tls)
    try:
        pool.spawn()  # before the baseline: see ClientPool
        server.start()
        try:
            measure(server, pool, plan, args, fig)
        finally:
            if isinstance(server, PushmailInstance):
                time.sleep(2.5)  # the stats files are rewritten every 2 s
                fig["loop"] = loop_figures(server.worker_stats())
            pool.close()
    finally:
        server.stop()
        fig["server_log"] = log_figures(server, args.keep_logs)
    return fig


def measure(server: BenchServer, pool: ClientPool, plan: RunPlan, args: argparse.Namespace,
            fig: Figures) -> None:  # fmt: skip
    """The phases of a run, in order, each adding its figures to *fig*."""
    users = plan_users(plan.users)
    sessions = plan_sessions(plan.n, users)
    before = connect_phase(server, pool, sessions, args, fig)
    extra = args.dovecot_hibernate if plan.server == "dovecot" else 0
    time.sleep(args.settle + extra)
    memory_figures(server, before, len(pool.baseline), fig)
    if isinstance(server, PushmailInstance):
        fig["workers_idle"] = [{k: w.get(k) for k in _WORKER_KEYS} for w in server.worker_stats()]
    lags: Figures = {"connect": phase_lag(server, wait=False)}
    hold(pool, args.hold)
    _, closed = pool.collect()
    fig["closed_during_hold"] = len(closed)
    lags["hold"] = phase_lag(server)
    baseline = dict(pool.baseline)
    single = single_user_phase(server, pool, sessions, users, args, baseline)
    fig["single"] = single
    lags["single"] = phase_lag(server)
    broadcast_phase(server, pool, sessions, users, args, baseline, fig)
    lags["broadcast"] = phase_lag(server)
    _, closed = pool.collect()
    fig["closed_by_server"] = len(closed)
    if isinstance(server, PushmailInstance):
        fig["max_lag_ms_after_phase"] = lags


def phase_lag(server: BenchServer, wait: bool = True) -> float | None:
    """The worst event-loop lag of any worker so far (pushmail; None for Dovecot).

    The stats files keep the maximum since start; reading it after each phase (and
    2.5 s for the files to be rewritten) shows which phase caused it."""
    if not isinstance(server, PushmailInstance):
        return None
    if wait:
        time.sleep(2.5)
    value = loop_figures(server.worker_stats())["max_lag_ms"]
    return float(value) if isinstance(value, int | float) else None


def connect_phase(server: BenchServer, pool: ClientPool, sessions: list[SessionSpec],
                  args: argparse.Namespace, fig: Figures) -> TreeMemory:  # fmt: skip
    """Warm up, read the baseline, then the storm; return the baseline memory."""
    port = session_port(server, args.tls)
    if args.tls:
        warm_up_tls(port, *plan_users(1)[0])
    else:
        warm_up(port, *plan_users(1)[0])
    time.sleep(args.settle)
    before = tree_memory(server.pid)
    fig["tcp_mem_kb_before"] = tcp_socket_memory_kb()
    fig["slab_kb_before"] = slab_kb()
    meter = CpuMeter(server, pool)
    started = time.monotonic()
    pool.open("127.0.0.1", port, sessions, timeout=args.session_timeout)
    seconds = time.monotonic() - started
    ready = len(pool.baseline)
    fig |= {
        "sessions_ready": ready,
        "sessions_failed": len(pool.failed),
        "connect_s": round(seconds, 2),
        "connect_per_s": round(ready / seconds, 1) if seconds > 0 else None,
        "connect_cpu_s": meter.split()
        | {"client_busiest_share": busiest_share(pool, meter.clients_before, seconds)},
    }
    if pool.failed:
        fig["first_failure"] = next(iter(pool.failed.values()))
    log(f"{plan_label(fig)}: {ready} idling after {seconds:.1f}s, {len(pool.failed)} failed")
    return before


def session_port(server: BenchServer, tls: bool) -> int:
    """The port the sessions connect to: IMAPS with --tls, else IMAP."""
    if not tls:
        return server.imap_port
    port = getattr(server, "imaps_port", None)
    if not isinstance(port, int):
        raise RuntimeError(f"{type(server).__name__} has no IMAPS port")
    return port


def warm_up_tls(port: int, user: str, password: str) -> None:
    """idle_latency's warm-up over implicit TLS: the one-time TLS costs (Dovecot's
    imap-login loading its certificate and OpenSSL's tables, the first SSL objects)
    belong to the baseline, not to the idle sessions."""
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_context(), timeout=60) as imap:
        imap.login(user, password)
        imap.select("INBOX")
        imap.logout()


class CpuMeter:
    """CPU seconds used from now on by the server's processes, the client processes
    and everything else (the benchmark's own LMTP sender among it): whether a phase
    was bound by the server, by the clients, or by the machine being full."""

    def __init__(self, server: BenchServer, pool: ClientPool) -> None:
        self._server, self._pool = server, pool
        self._server_pids = proctools.descendants(server.pid)
        self._server_before = cpu_seconds(self._server_pids)
        self.clients_before = cpu_seconds(pool.pids)
        self._all_before = proctools.system_busy_seconds()
        self._steal_before = proctools.system_steal_seconds()

    def split(self) -> dict[str, float]:
        # Dovecot's per-session processes come and go: count the tree as it is now too.
        pids = sorted(set(self._server_pids) | set(proctools.descendants(self._server.pid)))
        used_server = cpu_seconds(pids) - self._server_before
        used_clients = cpu_seconds(self._pool.pids) - self.clients_before
        used_all = proctools.system_busy_seconds() - self._all_before
        return {
            "server": round(used_server, 2),
            "clients": round(used_clients, 2),
            "other": round(max(0.0, used_all - used_server - used_clients), 2),
            "steal": round(proctools.system_steal_seconds() - self._steal_before, 2),
        }


def busiest_share(pool: ClientPool, cpu_before_total: float, seconds: float) -> float | None:
    """The busiest client process's CPU share of the storm's wall time (0..1): well
    below 1 means no client process was saturated. (Approximate: the start-up CPU of
    each worker, spent before the storm, is subtracted evenly.)"""
    if seconds <= 0 or not pool.pids:
        return None
    each_before = cpu_before_total / len(pool.pids)
    busiest = max(cpu_seconds([pid]) - each_before for pid in pool.pids)
    return round(busiest / seconds, 3)


def plan_label(fig: Figures) -> str:
    tls = " tls" if fig.get("tls") else ""
    return f"{fig['server']} n={fig['n']}{tls} fill={fig['fill']}"


# What each worker's stats file says once all sessions idle (server/serve.py).
_WORKER_KEYS = (
    "worker",
    "connections",
    "hibernated",
    "idlers",
    "tls_handoffs",
    "tls_kept_on_openssl",
    "moved_home",
    "adopted",
)


def memory_figures(server: BenchServer, before: TreeMemory, ready: int, fig: Figures) -> None:
    """Per-session memory: total now, and the growth since the baseline, over *ready*."""
    idle = tree_memory(server.pid)
    grown = idle.minus(before)
    tcp_after = tcp_socket_memory_kb()
    tcp_before = int(str(fig["tcp_mem_kb_before"]))
    slab_after = slab_kb()
    fig |= {
        "processes_idle": idle.processes,
        "baseline_kb": {"rss": before.rss_kb, "pss": before.pss_kb, "uss": before.uss_kb},
        "idle_kb": {"rss": idle.rss_kb, "pss": idle.pss_kb, "uss": idle.uss_kb},
        "per_session_kb": {
            "pss": _per(grown.pss_kb, ready),
            "rss": _per(grown.rss_kb, ready),
            "uss": _per(grown.uss_kb, ready),
        },
        "per_session_total_kb": {"pss": _per(idle.pss_kb, ready), "rss": _per(idle.rss_kb, ready)},
        "tcp_mem_kb_after": tcp_after,
        "tcp_mem_per_session_kb": _per(tcp_after - tcp_before, ready),
        "slab_kb_after": slab_after,
        "slab_per_connection_both_ends_kb": _per(
            slab_after - int(str(fig["slab_kb_before"])), ready
        ),
    }


def _per(total_kb: int, sessions: int) -> float | None:
    return round(total_kb / sessions, 2) if sessions else None


def hold(pool: ClientPool, seconds: float) -> None:
    """Keep every session idling for *seconds*, logging drops once a minute."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(60.0, left))
        if deadline - time.monotonic() > 0:
            _, closed = pool.collect()
            log(f"holding: {len(closed)} sessions closed so far, {left:.0f}s left")


def single_user_phase(server: BenchServer, pool: ClientPool, sessions: list[SessionSpec],
                      users: list[tuple[str, str]], args: argparse.Namespace,
                      baseline: dict[int, int]) -> Figures:  # fmt: skip
    """M messages, one user each, spaced; latency to each of that user's devices.
    Advances *baseline* by what was delivered, for the next phase."""
    recipients = [users[(i * 7919) % len(users)][0] for i in range(args.messages)]
    deliveries, errors = deliver(server.lmtp_port, recipients, args.spacing_ms / 1000)
    latencies, missed = wait_matched(pool, deliveries, sessions, baseline, args.grace)
    advance(baseline, sessions, deliveries)
    return {"messages": args.messages, "delivery_errors": errors} | latency_tail(latencies, missed)


def broadcast_phase(server: BenchServer, pool: ClientPool, sessions: list[SessionSpec],
                    users: list[tuple[str, str]], args: argparse.Namespace,
                    baseline: dict[int, int], fig: Figures) -> None:  # fmt: skip
    """One message to each user (at most --broadcast-users) in one burst."""
    recipients = [address for address, _ in users[: args.broadcast_users]]
    meter = CpuMeter(server, pool)
    result = burst(server.lmtp_port, recipients, args.lmtp_connections, args.rcpts_per_message)
    cpu = meter.split()
    log(f"{plan_label(fig)}: broadcast of {len(result.deliveries)} took {result.seconds:.2f}s")
    latencies, missed = wait_matched(pool, result.deliveries, sessions, baseline, args.grace)
    advance(baseline, sessions, result.deliveries)
    fig["broadcast"] = {
        "recipients": len(recipients),
        "lmtp_connections": args.lmtp_connections,
        "rcpts_per_message": args.rcpts_per_message,
        "deliver_s": round(result.seconds, 3),
        "deliveries_per_s": round(len(result.deliveries) / result.seconds, 1)
        if result.seconds > 0 else None,
        "deliver_cpu_s": cpu,
        "delivery_errors": len(result.errors),
        **({"first_error": result.errors[0]} if result.errors else {}),
        **latency_tail(latencies, missed),
    }  # fmt: skip


def latency_tail(latencies: list[int], missed: int) -> Figures:
    """idle_latency's percentiles, plus how many pairs were slower than 100 ms, 1 s and
    10 s: a few very late notifications (a lost wake-up repaired by a periodic
    re-check) hide between p99 and max."""
    figures = latency_figures(latencies, missed)
    for name, ns in (("over_100ms", 10**8), ("over_1s", 10**9), ("over_10s", 10**10)):
        figures[name] = sum(1 for v in latencies if v > ns)
    return figures


def advance(baseline: dict[int, int], sessions: list[SessionSpec], done: list[Delivery]) -> None:
    """Raise each idling session's expected count by the messages its user received."""
    per_user: dict[str, int] = {}
    for delivery in done:
        per_user[delivery.user] = per_user.get(delivery.user, 0) + 1
    for spec in sessions:
        if spec.sid in baseline:
            baseline[spec.sid] += per_user.get(spec.user, 0)


def wait_matched(pool: ClientPool, deliveries: list[Delivery], sessions: list[SessionSpec],
                 baseline: dict[int, int], grace: float) -> tuple[list[int], int]:  # fmt: skip
    """Collect EXISTS until every (delivery, session) pair is matched or *grace* ends."""
    deadline = time.monotonic() + grace
    while True:
        events, _ = pool.collect()
        latencies, missed = match_latencies(deliveries, sessions, baseline, events)
        if missed == 0 or time.monotonic() > deadline:
            return latencies, missed
        time.sleep(1.0)


def loop_figures(stats: list[dict[str, object]]) -> Figures:
    """Worst event-loop lag per worker, and over all workers."""
    lags = {str(w.get("worker")): w.get("max_loop_lag_ms") for w in stats}
    numbers = [v for v in lags.values() if isinstance(v, int | float)]
    gc_pauses = {str(w.get("worker")): w.get("max_gc_pause_ms") for w in stats}
    full_gcs = {str(w.get("worker")): w.get("full_gc_runs") for w in stats}
    return {
        "max_lag_ms": max(numbers) if numbers else None,
        "per_worker_ms": lags,
        "max_gc_pause_ms": gc_pauses,
        "full_gc_runs": full_gcs,
    }


def log_figures(server: BenchServer, keep: Path | None = None) -> Figures:
    """Errors the server logged: a count and the first few distinct lines. With *keep*,
    the whole log is copied there (the run's directory is deleted at the end)."""
    path = getattr(server, "log_path", None)
    if not isinstance(path, Path) or not path.exists():
        return {}
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, keep / f"{path.parent.name}.log")
    bad = ("ERROR", "CRITICAL", "Traceback", "Error:", "Fatal:", "Panic:")
    text = path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if any(b in ln for b in bad)]
    first: list[str] = []
    for line in lines:
        if line[:200] not in first and len(first) < 5:
            first.append(line[:200])
    figures: Figures = {"error_lines": len(lines), "first": first}
    if isinstance(server, dovecot.DovecotInstance):
        figures["inotify_warnings"] = server.inotify_warnings()
    return figures


def ratios(push: Figures, dove: Figures) -> Figures:
    """How much better pushmail did than Dovecot at the same N (above 1: better)."""

    def get(fig: Figures, *path: str) -> float | None:
        value: object = fig
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return float(value) if isinstance(value, int | float) else None

    out: Figures = {"pushmail_n": push.get("n")}
    lower_is_better = {
        "pss_per_session": ("per_session_kb", "pss"),
        "rss_per_session": ("per_session_kb", "rss"),
        "single_p50": ("single", "p50_ms"),
        "single_p99": ("single", "p99_ms"),
        "broadcast_p50": ("broadcast", "p50_ms"),
        "broadcast_p99": ("broadcast", "p99_ms"),
        "broadcast_deliver_s": ("broadcast", "deliver_s"),
    }
    for name, path in lower_is_better.items():
        a, b = get(dove, *path), get(push, *path)
        if a is not None and b is not None and b > 0:
            out[name] = round(a / b, 2)
    a, b = get(push, "connect_per_s"), get(dove, "connect_per_s")
    if a is not None and b:
        out["connect_rate"] = round(a / b, 2)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = p.add_argument
    add("--n", default="1000,10000", help="pushmail session counts, comma-separated")
    add("--dovecot-n", type=int, default=10000, help="Dovecot sessions (0: skip Dovecot)")
    add("--dovecot-hibernate", type=int, default=5, help="imap_hibernate_timeout, seconds")
    add("--skip-pushmail", action="store_true")
    add("--tls", action="store_true", help="sessions use implicit TLS (IMAPS)")
    add("--users", type=int, default=0, help="users (0: min(--broadcast-users, N/--devices))")
    add("--devices", type=int, default=2, help="least sessions per user when --users is 0")
    add("--broadcast-users", type=int, default=10000, help="users the burst reaches")
    add("--fill", type=int, default=0, help="messages put in each INBOX before the run")
    add("--messages", type=int, default=20, help="single-user deliveries")
    add("--spacing-ms", type=float, default=50.0, help="gap between single-user deliveries")
    add("--lmtp-connections", type=int, default=8, help="concurrent LMTP connections")
    add("--rcpts-per-message", type=int, default=1, help="recipients per LMTP transaction")
    add("--hold", type=float, default=10.0, help="seconds all sessions idle before delivery")
    add("--per-process", type=int, default=15000, help="sessions per client process/worker")
    add("--workers", type=int, default=0, help="pushmail workers (0: CPUs or N/--per-process)")
    add(
        "--no-home-workers",
        action="store_true",
        help="keep sessions in the worker that accepted them (imap_settings.home_workers)",
    )
    add("--concurrency", type=int, default=400, help="sessions being set up at once")
    add("--session-timeout", type=float, default=300.0, help="per-session setup limit")
    add("--settle", type=float, default=3.0, help="pause before memory readings")
    add("--grace", type=float, default=120.0, help="wait for late EXISTS, per phase")
    add("--timeout", type=int, default=3600, help="overall limit in seconds")
    add("--server-log-level", default=None, help="pushmail log_level (e.g. DEBUG)")
    add("--keep-logs", type=Path, default=None, help="copy each server's log into DIR")
    args = p.parse_args(argv)
    try:
        args.ns = [int(x) for x in str(args.n).split(",") if x.strip()]
    except ValueError:
        p.error("--n takes comma-separated integers")
    if any(n < 1 for n in args.ns) or args.users < 0 or args.devices < 1:
        p.error("need N >= 1, --users >= 0, --devices >= 1")
    return args


def plans(args: argparse.Namespace) -> list[RunPlan]:
    runs = [] if args.skip_pushmail else [plan_run("pushmail", n, args) for n in args.ns]
    if args.dovecot_n > 0:
        runs.append(plan_run("dovecot", args.dovecot_n, args))
    return runs


def run_dovecot(plan: RunPlan, args: argparse.Namespace, workdir: Path) -> Figures:
    """Dovecot with the operator's limits raised (inotify restored afterwards)."""
    version = dovecot.ensure_installed()
    limits, previous = dovecot.raise_inotify_limits(plan.n)
    try:
        fig = run_one(plan, args, workdir)
    finally:
        dovecot.restore_inotify_limits(previous)
    return fig | {"version": version, "inotify": limits, "hibernate_s": args.dovecot_hibernate}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(args.timeout)
    proctools.raise_nofile()
    done: list[Figures] = []
    failed = timed_out = False
    with tempfile.TemporaryDirectory(prefix="idle-scale-") as tmp:
        Path(tmp).chmod(0o711)  # Dovecot's auth and mail processes run as other uids
        for index, plan in enumerate(plans(args)):
            workdir = Path(tmp) / f"{index}-{plan.server}-{plan.n}"
            fig: Figures
            if timed_out:
                fig = {"server": plan.server, "n": plan.n, "tls": bool(args.tls)}
                fig["error"] = "not run: timeout"
            else:
                try:
                    run = run_dovecot if plan.server == "dovecot" else run_one
                    fig = run(plan, args, workdir)
                except Exception as exc:  # one run's failure is a figure, not a crash
                    log(f"{plan.server} n={plan.n} failed: {type(exc).__name__}: {exc}")
                    fig = {"server": plan.server, "n": plan.n, "tls": bool(args.tls)}
                    fig["error"] = f"{type(exc).__name__}: {exc}"[:500]
                    failed, timed_out = True, isinstance(exc, OverallTimeout)
            if plan.server == "dovecot" and "error" not in fig:
                same = [f for f in done if f.get("n") == plan.n and "error" not in f]
                if same:
                    fig["ratio"] = ratios(same[-1], fig)
            done.append(fig)
            print(json.dumps({"bench": "idle_scale"} | fig, separators=(",", ":")), flush=True)
    signal.alarm(0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
