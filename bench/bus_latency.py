"""Change-bus latency (issue 17): a hint published on node A → the listener on node B.

    .venv/bin/python bench/bus_latency.py                      # 1,000 hints per bus
    .venv/bin/python bench/bus_latency.py --count 1000 --gap 0.002 --nats nats://127.0.0.1:4222

Node B is a separate process (``--receiver``) holding one listener for one user, as
an idle session's hub does; node A (this process) publishes ``--count`` hints, one
every ``--gap`` seconds, so each one meets an idle receiver (what a delivery waking
an idle session sees), not a queue. Each hint carries its send time (CLOCK_MONOTONIC,
the same clock in both processes) in its MODSEQ field; B records arrival − send.
The Unix-socket bus (one machine) and the NATS bus (``bus = "nats://…"``) are
measured in the same run. Prints one JSON line: p50/p99/max in microseconds and the
hints lost, per bus. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pushmail.events.factory import open_bus, unix_url
from pushmail.events.interfaces import MailboxChanged
from pushmail.events.nats import NatsBus
from pushmail.events.unixsock import UnixSocketBus

USER = 42
Bus = NatsBus | UnixSocketBus


def log(message: str) -> None:
    print(f"[bus_latency] {message}", file=sys.stderr, flush=True)


def make_bus(kind: str, where: str, prefix: str) -> Bus:
    """The bus a server would open for the same URL (``open_bus``, the one place
    that builds one)."""
    if kind == "nats":
        url = f"{where}?prefix={prefix}" if prefix else where
    else:
        url = unix_url(Path(where))
    bus = open_bus(url)
    assert isinstance(bus, (NatsBus, UnixSocketBus))
    return bus


async def ready(bus: Bus) -> None:
    """Until B's subscription is live (NATS: confirmed by the server)."""
    if isinstance(bus, NatsBus):
        live = asyncio.Event()
        bus.on_resync(lambda users: live.set())  # whoever re-checks, B's bucket is live
        await bus.wait_connected(10)
        if not bus.subscribed_buckets():
            await asyncio.wait_for(live.wait(), 10)


async def receive(kind: str, where: str, prefix: str, count: int, timeout: float) -> None:
    """Node B: one listener; print the latencies (ns) as JSON when done."""
    loop = asyncio.get_running_loop()
    bus = make_bus(kind, where, prefix)
    bus.start(loop)
    latencies: list[int] = []
    done = asyncio.Event()

    def on_event(event: MailboxChanged) -> None:
        latencies.append(time.monotonic_ns() - event.modseq)
        if len(latencies) >= count:
            done.set()

    bus.subscribe(USER, on_event)
    await ready(bus)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):  # lost hints: report what came
        await asyncio.wait_for(done.wait(), timeout)
    print(json.dumps(latencies), flush=True)
    if isinstance(bus, NatsBus):
        await bus.aclose()
    else:
        bus.close()


async def publish(kind: str, where: str, prefix: str, count: int, gap: float) -> dict[str, Any]:
    """Node A: start B, publish ``count`` hints, read B's latencies."""
    loop = asyncio.get_running_loop()
    bus = make_bus(kind, where, prefix)
    bus.start(loop)
    if isinstance(bus, NatsBus):
        await bus.wait_connected(10)
    args = [sys.executable, __file__, "--receiver", kind, "--where", where]
    args += ["--prefix", prefix, "--count", str(count), "--timeout", str(count * gap + 30)]
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"ready":
        return {"error": f"receiver did not start: {line!r}"}
    await asyncio.sleep(0.2)  # the unix bus: let A's listing see B's socket
    for _ in range(count):
        bus.publish(MailboxChanged(USER, 1, time.monotonic_ns(), "new"))
        await asyncio.sleep(gap)
    out = await proc.stdout.readline()
    await proc.wait()
    if isinstance(bus, NatsBus):
        await bus.aclose()
    else:
        bus.close()
    got: list[int] = sorted(json.loads(out))
    if not got:
        return {"error": "no hint arrived", "lost": count}

    def pct(p: float) -> float:
        return round(got[min(len(got) - 1, int(p * len(got)))] / 1000, 1)

    return {
        "hints": count,
        "lost": count - len(got),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": round(got[-1] / 1000, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "bus_latency", "count": args.count, "gap_s": args.gap}
    with tempfile.TemporaryDirectory(prefix="bus-latency-") as tmp:
        log("unix-socket bus")
        result["unixsock"] = await publish("unix", tmp, "", args.count, args.gap)
    log(f"NATS bus at {args.nats}")
    prefix = f"bench{secrets.token_hex(4)}"
    try:
        result["nats"] = await publish("nats", args.nats, prefix, args.count, args.gap)
    except (OSError, TimeoutError) as exc:
        result["nats"] = {"error": str(exc)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.002, help="seconds between hints")
    parser.add_argument("--nats", default=os.environ.get("PUSHMAIL_NATS", "nats://127.0.0.1:4222"))
    parser.add_argument("--receiver", choices=("unix", "nats"), help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(receive(args.receiver, args.where, args.prefix, args.count, args.timeout))
        return 0
    result = asyncio.run(main_async(args))
    print(json.dumps(result), flush=True)
    return 1 if any("error" in result[k] for k in ("unixsock", "nats")) else 0


if __name__ == "__main__":
    sys.exit(main())
