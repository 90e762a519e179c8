"""Delivery -> ``* N EXISTS`` latency and memory per idle session: pushmail vs Dovecot.

For N IMAP sessions idling on the INBOXes of U users (session i watches user i mod U, so
one delivery wakes N/U devices), deliver M messages over LMTP, one recipient each, and
time from the LMTP ``250`` for that recipient (the durable reply) to each of that user's
sessions hearing EXISTS. Memory per idle session is the growth of the server's process
tree (RSS and PSS) from before the first connection to when all N are idling, over N.

Both servers run in the same invocation, one after the other, on the same machine and
client harness, so the ratio is meaningful even where absolute figures are not.
Prints ONE JSON line on stdout; progress goes to stderr. Never passes or fails on time.
The exit status is 1 only if a side could not be measured at all (its entry holds
``"error"``).
"""

from __future__ import annotations

import argparse
import imaplib
import json
import math
import signal
import smtplib
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

import dovecot
import proctools
from imap_idle_client import ClientPool, ExistsEvent, SessionSpec
from proctools import TreeMemory, tree_memory
from pushmail_server import PushmailInstance

DOMAIN = "bench.test"


class BenchServer(Protocol):
    """What a measured server must offer (both halves implement it)."""

    @property
    def imap_port(self) -> int: ...
    @property
    def lmtp_port(self) -> int: ...
    @property
    def pid(self) -> int: ...
    def start(self, timeout: float = 60.0) -> None: ...
    def stop(self, timeout: float = 15.0) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One LMTP transaction: to whom, and when its single 250 reply arrived."""

    user: str
    t_reply_ns: int


def log(message: str) -> None:
    proctools.log("idle_latency", message)


def plan_users(count: int) -> list[tuple[str, str]]:
    """Benchmark accounts: ``userNNNN@bench.test`` with a per-user password."""
    return [(f"user{i:04d}@{DOMAIN}", f"pw-{i}-bench") for i in range(count)]


def plan_sessions(n: int, users: list[tuple[str, str]]) -> list[SessionSpec]:
    """Session *i* watches user *i mod U*: every user gets N/U (±1) devices."""
    return [SessionSpec(i, *users[i % len(users)]) for i in range(n)]


def match_latencies(
    deliveries: list[Delivery],
    sessions: list[SessionSpec],
    baseline: dict[int, int],
    events: Iterable[ExistsEvent],
) -> tuple[list[int], int]:
    """Pair each (delivery, session of its user) with the first EXISTS that covers it.

    The k-th delivery to a user raises that user's count to ``baseline + k``. A server
    may coalesce two deliveries into one EXISTS; the first EXISTS >= the expected count
    is the moment the client learned of the message, so that is what is timed. Sessions
    that never became idle (absent from *baseline*) are not counted. Returns the
    latencies in ns (negative if EXISTS beat the LMTP reply) and the number of misses.
    """
    by_session: dict[int, list[ExistsEvent]] = {}
    for event in events:
        by_session.setdefault(event.sid, []).append(event)
    for seen in by_session.values():
        seen.sort(key=lambda e: e.t_ns)
    watchers: dict[str, list[int]] = {}
    for spec in sessions:
        if spec.sid in baseline:
            watchers.setdefault(spec.user, []).append(spec.sid)
    delivered: dict[str, int] = {}
    latencies: list[int] = []
    missed = 0
    for delivery in deliveries:
        k = delivered[delivery.user] = delivered.get(delivery.user, 0) + 1
        for sid in watchers.get(delivery.user, []):
            want = baseline[sid] + k
            hit = next((e for e in by_session.get(sid, []) if e.exists >= want), None)
            if hit is None:
                missed += 1
            else:
                latencies.append(hit.t_ns - delivery.t_reply_ns)
    return latencies, missed


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..100) of an ascending, non-empty list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_figures(latencies: list[int], missed: int) -> dict[str, object]:
    """p50/p99/max/mean in ms (3 decimals), pair count and misses."""
    figures: dict[str, object] = {"pairs": len(latencies) + missed, "missed": missed}
    if latencies:
        ordered = sorted(latencies)
        ms = 1e6
        figures |= {
            "p50_ms": round(percentile(ordered, 50) / ms, 3),
            "p99_ms": round(percentile(ordered, 99) / ms, 3),
            "max_ms": round(ordered[-1] / ms, 3),
            "mean_ms": round(sum(ordered) / len(ordered) / ms, 3),
            "before_reply": sum(1 for v in ordered if v < 0),
        }
    return figures


def message_bytes(index: int, recipient: str) -> bytes:
    """A small, well-formed RFC 5322 message."""
    return (
        f"From: bench <bench@{DOMAIN}>\r\nTo: <{recipient}>\r\n"
        f"Subject: idle latency {index}\r\n"
        f"Message-ID: <idle-latency-{index}-{time.time_ns()}@{DOMAIN}>\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"\r\nmessage {index}\r\n"
    ).encode()


def deliver(lmtp_port: int, recipients: list[str], spacing_s: float) -> tuple[list[Delivery], int]:
    """Send one message per recipient over one LMTP connection, *spacing_s* apart."""
    deliveries: list[Delivery] = []
    errors = 0
    with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=30) as lmtp:
        for index, rcpt in enumerate(recipients):
            started = time.monotonic()
            try:
                lmtp.sendmail(f"bench@{DOMAIN}", [rcpt], message_bytes(index, rcpt))
                deliveries.append(Delivery(rcpt, time.monotonic_ns()))
            except smtplib.SMTPException as exc:
                errors += 1
                log(f"delivery {index} to {rcpt} failed: {exc}")
            time.sleep(max(0.0, started + spacing_s - time.monotonic()))
    return deliveries, errors


def warm_up(imap_port: int, user: str, password: str) -> None:
    """One full login before the baseline, so one-time costs (auth threads and their
    arenas, Dovecot's auth worker, caches) are not billed to the idle sessions."""
    with imaplib.IMAP4("127.0.0.1", imap_port, timeout=60) as imap:
        imap.login(user, password)
        imap.select("INBOX")
        imap.logout()


def wait_for_all(
    pool: ClientPool, deliveries: list[Delivery], sessions: list[SessionSpec], grace_s: float
) -> tuple[list[int], int, set[int]]:
    """Collect until every expected EXISTS is in or *grace_s* has passed."""
    deadline = time.monotonic() + grace_s
    while True:
        events, closed = pool.collect()
        latencies, missed = match_latencies(deliveries, sessions, pool.baseline, events)
        if missed == 0 or time.monotonic() > deadline:
            return latencies, missed, closed
        time.sleep(0.2)


@dataclass(frozen=True, slots=True)
class RawRun:
    """What one server's run produced, before it is turned into figures."""

    before: TreeMemory
    idle: TreeMemory
    ready: int
    failed: dict[int, str]
    connect_s: float
    delivery_errors: int
    latencies: list[int]
    missed: int
    closed: int


def measure(
    server: BenchServer, args: argparse.Namespace, idle_settle: float = 0.0
) -> dict[str, object]:
    """Start *server*, park N sessions in IDLE, deliver, and return its figures.

    *idle_settle* is added to ``--settle`` before the idle memory reading (Dovecot's
    hibernation only moves sessions out of their processes after its timeout).
    """
    pool = ClientPool(_client_procs(args), args.concurrency)
    try:
        pool.spawn()  # before the baseline: see ClientPool
        server.start()
        try:
            raw = _run_sessions(server, pool, args, idle_settle)
        finally:
            pool.close()
    finally:
        server.stop()
    return _figures(raw)


def _run_sessions(
    server: BenchServer, pool: ClientPool, args: argparse.Namespace, idle_settle: float
) -> RawRun:
    users = plan_users(args.users)
    sessions = plan_sessions(args.n, users)
    warm_up(server.imap_port, *users[0])
    time.sleep(args.settle)
    before = tree_memory(server.pid)
    started = time.monotonic()
    pool.open("127.0.0.1", server.imap_port, sessions, timeout=args.session_timeout)
    connect_s = time.monotonic() - started
    log(f"{len(pool.baseline)}/{args.n} sessions idling after {connect_s:.1f}s")
    time.sleep(args.settle + idle_settle)
    idle = tree_memory(server.pid)
    recipients = [users[i % len(users)][0] for i in range(args.messages)]
    deliveries, errors = deliver(server.lmtp_port, recipients, args.spacing_ms / 1000)
    latencies, missed, closed = wait_for_all(pool, deliveries, sessions, args.grace)
    return RawRun(
        before, idle, len(pool.baseline), dict(pool.failed), connect_s, errors,
        latencies, missed, len(closed),
    )  # fmt: skip


def _figures(raw: RawRun) -> dict[str, object]:
    grown = raw.idle.minus(raw.before)
    figures: dict[str, object] = {
        "sessions_ready": raw.ready,
        "sessions_failed": len(raw.failed),
        "connect_s": round(raw.connect_s, 2),
        "delivery_errors": raw.delivery_errors,
        "closed_by_server": raw.closed,
        **latency_figures(raw.latencies, raw.missed),
        "rss_per_session_kb": _per(grown.rss_kb, raw.ready),
        "pss_per_session_kb": _per(grown.pss_kb, raw.ready),
        "uss_per_session_kb": _per(grown.uss_kb, raw.ready),
        "baseline_rss_kb": raw.before.rss_kb,
        "baseline_pss_kb": raw.before.pss_kb,
        "processes_idle": raw.idle.processes,
    }
    if raw.failed:
        figures["first_failure"] = next(iter(raw.failed.values()))
    return figures


def _per(total_kb: int, sessions: int) -> float | None:
    """kB per session, or None (JSON null) when no session became idle."""
    return round(total_kb / sessions, 2) if sessions else None


def _client_procs(args: argparse.Namespace) -> int:
    procs: int = args.client_procs
    sessions: int = args.n
    return procs if procs > 0 else max(1, math.ceil(sessions / 5000))


def run_dovecot(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """The Dovecot half: install if needed, raise inotify limits, measure, restore."""
    version = dovecot.ensure_installed()
    limits, previous = dovecot.raise_inotify_limits(args.n)
    inst = dovecot.DovecotInstance(
        workdir / "dovecot", plan_users(args.users), args.n, args.dovecot_hibernate
    )
    inst.workdir.mkdir()
    try:
        figures = measure(inst, args, idle_settle=args.dovecot_hibernate)
    finally:
        dovecot.restore_inotify_limits(previous)
    figures |= {
        "version": version,
        "inotify": limits,
        "inotify_warnings": inst.inotify_warnings(),
        "hibernate_s": args.dovecot_hibernate,
    }
    return figures


def run_pushmail(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """The pushmail half: create users through the CLI, then measure."""
    inst = PushmailInstance(
        workdir / "pushmail", plan_users(args.users), workers=args.pushmail_workers
    )
    inst.workdir.mkdir()
    inst.add_users()
    figures = measure(inst, args)
    figures["user_add_s"] = round(inst.user_add_seconds, 2)
    figures["workers"] = args.pushmail_workers
    return figures


def ratios(push: Mapping[str, object], dove: Mapping[str, object]) -> dict[str, float]:
    """Dovecot figure / pushmail figure: above 1 means pushmail is faster or smaller."""
    keys = {"p50": "p50_ms", "p99": "p99_ms", "max": "max_ms"}
    for kind in ("rss", "pss", "uss"):
        keys[f"{kind}_per_session"] = f"{kind}_per_session_kb"
    out: dict[str, float] = {}
    for name, key in keys.items():
        a, b = dove.get(key), push.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float) and b > 0:
            out[name] = round(a / b, 2)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=2000, help="idle sessions (default 2000)")
    p.add_argument("--users", type=int, default=100, help="users the sessions spread over")
    p.add_argument("--messages", type=int, default=50, help="messages delivered")
    p.add_argument("--spacing-ms", type=float, default=20.0, help="gap between deliveries")
    p.add_argument("--skip-dovecot", action="store_true")
    p.add_argument("--skip-pushmail", action="store_true")
    p.add_argument("--client-procs", type=int, default=0, help="0: one per 5000 sessions")
    p.add_argument("--concurrency", type=int, default=100, help="sessions set up at once")
    p.add_argument("--session-timeout", type=float, default=60.0, help="per-session setup")
    p.add_argument("--settle", type=float, default=2.0, help="pause before memory readings")
    p.add_argument("--grace", type=float, default=35.0, help="wait for late EXISTS")
    p.add_argument("--pushmail-workers", type=int, default=None, help="serve --workers")
    p.add_argument("--dovecot-hibernate", type=int, default=0, help="imap_hibernate_timeout")
    p.add_argument("--timeout", type=int, default=1800, help="overall limit in seconds")
    args = p.parse_args(argv)
    if args.n < 1 or args.users < 1 or args.messages < 0 or args.users > args.n:
        p.error("need n >= users >= 1 and messages >= 0")
    return args


class OverallTimeout(Exception):
    """``--timeout`` expired: the current side is abandoned and no other is started."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGALRM into exceptions so every ``finally`` cleans up."""
    if signum == signal.SIGALRM:
        raise OverallTimeout("overall benchmark timeout reached")
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(args.timeout)
    proctools.raise_nofile()
    result: dict[str, object] = {
        "bench": "idle_latency",
        "n": args.n,
        "users": args.users,
        "messages": args.messages,
    }
    sides = [("pushmail", run_pushmail, args.skip_pushmail)]
    sides.append(("dovecot", run_dovecot, args.skip_dovecot))
    failed = timed_out = False
    with tempfile.TemporaryDirectory(prefix="idle-latency-") as tmp:
        Path(tmp).chmod(0o711)  # Dovecot's auth and mail processes run as other uids
        for name, run, skip in sides:
            if skip:
                continue
            if timed_out:
                result[name] = {"error": "not run: overall timeout reached"}
                continue
            try:
                result[name] = run(args, Path(tmp))
            except Exception as exc:  # one side's failure is a figure, not a crash
                log(f"{name} side failed: {type(exc).__name__}: {exc}")
                result[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                failed = True
                timed_out = isinstance(exc, OverallTimeout)
    signal.alarm(0)
    push, dove = result.get("pushmail"), result.get("dovecot")
    if isinstance(push, dict) and isinstance(dove, dict) and not failed:
        result["ratio"] = ratios(push, dove)
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
