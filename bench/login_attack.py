"""A real user's IMAP login latency while a password-guessing run goes on (issue 15
item 4), against a ``pushmail serve`` started through its command line.

The attack: ``--connections`` IMAP connections from ``--attack-sources`` loopback
addresses (127.0.0.1, 127.0.1.1, ...), each sending ``LOGIN <account> <guess>`` in a
loop against a few existing accounts (argon2 hashes, so every checked guess costs
the server a hash), reconnecting whenever the server hangs up. The victim: users who
never logged in before, each from a fresh address (127.0.2.x), log in with the right
password while the attack runs (the worst case: no trust, no cached credential).

Prints one JSON line: the login latency without an attack, each latency under attack,
and what the attack got (attempts, answers by kind). Loopback only, bounded in time.

    .venv/bin/python bench/login_attack.py                       # 200 connections
    .venv/bin/python bench/login_attack.py --connections 200 --logins 3 --warmup 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PASSWORD = "correct horse battery"
TARGETS = ("bob@example.org", "carol@example.org", "dave@example.org")


@dataclass(slots=True)
class AttackStats:
    attempts: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # NO / UNAVAILABLE / BYE / OK
    connects: int = 0


def _kind(line: bytes) -> str:
    if b"[UNAVAILABLE]" in line:
        return "limited"
    if b"[AUTHENTICATIONFAILED]" in line:
        return "failed"
    return line.split(b" ", 2)[1].decode("ascii", "replace") if b" " in line else "?"


async def login_once(
    host: str, port: int, source: str, user: str, password: str, timeout: float = 120.0
) -> tuple[float, bytes]:
    """Seconds from connect to the tagged reply of one LOGIN, and that reply."""
    started = time.monotonic()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0)), timeout
    )
    try:
        await asyncio.wait_for(reader.readline(), timeout)
        writer.write(f'a LOGIN {user} "{password}"\r\n'.encode())
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line or line.startswith(b"a "):
                return time.monotonic() - started, line.strip()
    finally:
        writer.close()


async def _guesser(
    host: str, port: int, source: str, n: int, stats: AttackStats, stop: asyncio.Event
) -> None:
    guess = 0
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.1)
            continue
        stats.connects += 1
        try:
            await reader.readline()
            while not stop.is_set():
                guess += 1
                user = TARGETS[(n + guess) % len(TARGETS)]
                writer.write(f"g LOGIN {user} guess-{n}-{guess}\r\n".encode())
                stats.attempts += 1
                line = await reader.readline()
                while line.startswith(b"* ") and not line.startswith(b"* BYE"):
                    line = await reader.readline()
                if not line or line.startswith(b"* BYE"):
                    stats.answers["hung up"] += 1
                    break
                stats.answers[_kind(line)] += 1
        except OSError:
            stats.answers["reset"] += 1
        finally:
            writer.close()


async def attack_and_measure(
    host: str,
    port: int,
    connections: int,
    sources: int,
    warmup: float,
    victims: list[tuple[str, str]],
) -> dict[str, object]:
    stats, stop = AttackStats(), asyncio.Event()
    addresses = [f"127.0.{k // 256}.{k % 256 + 1}" for k in range(sources)]
    attackers = [
        asyncio.ensure_future(_guesser(host, port, addresses[i % sources], i, stats, stop))
        for i in range(connections)
    ]
    started = time.monotonic()
    await asyncio.sleep(warmup)
    latencies, replies = [], []
    for i, (user, password) in enumerate(victims):
        seconds, reply = await login_once(host, port, f"127.0.2.{i + 1}", user, password)
        latencies.append(round(seconds, 3))
        replies.append(reply.decode("ascii", "replace")[:40])
    elapsed = time.monotonic() - started
    stop.set()
    for task in attackers:
        task.cancel()
    await asyncio.gather(*attackers, return_exceptions=True)
    return {
        "login_s_under_attack": latencies,
        "login_replies": replies,
        "attack": {
            "connections": connections,
            "sources": sources,
            "seconds": round(elapsed, 1),
            "attempts": stats.attempts,
            "attempts_per_s": round(stats.attempts / elapsed, 1),
            "connects": stats.connects,
            "answers": dict(stats.answers),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--attack-sources", type=int, default=1)
    parser.add_argument("--logins", type=int, default=3, help="victim logins under attack")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of attack first")
    args = parser.parse_args(argv)

    from pushmail_server import PushmailInstance

    victims = [(f"user{i}@example.org", PASSWORD) for i in range(args.logins + 1)]
    users = [(t, "the real " + t) for t in TARGETS] + victims
    with tempfile.TemporaryDirectory(prefix="login-attack-") as tmp:
        server = PushmailInstance(Path(tmp), users, log_path=Path(tmp) / "server.log")
        server.add_users()
        server.start()
        try:
            idle, _ = asyncio.run(
                login_once("127.0.0.1", server.imap_port, "127.0.3.1", *victims[0])
            )
            result: dict[str, object] = {"login_s_idle": round(idle, 3)}
            result.update(
                asyncio.run(
                    attack_and_measure(
                        "127.0.0.1",
                        server.imap_port,
                        args.connections,
                        args.attack_sources,
                        args.warmup,
                        victims[1:],
                    )
                )
            )
        finally:
            server.stop()
    under = result["login_s_under_attack"]
    assert isinstance(under, list)
    result["login_s_under_attack_max"] = max(under) if under else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
