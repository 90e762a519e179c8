"""What ``pushmail watch`` costs on the wire against pushmail: one JSON line.

An idle hour is not measured by waiting an hour. The watcher's idle traffic is made of
two repeating exchanges, each measured here over many repetitions with short intervals:

* a renewal (``DONE`` / tagged OK / ``IDLE`` / ``+ idling``), every ``idle_renew``;
* the server's ``* OK Still here``, sent only when the connection has been silent for
  the server's ``idle_keepalive`` (so never, when the client renews more often).

Bytes per idle hour are then computed for the *default* settings (client
``idle_renew`` 300 s, server ``idle_keepalive`` 600 s). Bytes per notified message are
measured directly: N messages delivered over LMTP, spaced apart so each is its own
EXISTS / DONE / FETCH / IDLE round. Figures are IMAP payload bytes in both directions
(plaintext IMAP on loopback; TLS adds its record overhead, TCP/IP its headers).

    .venv/bin/python bench/watch_cost.py [--messages 20] [--renewals 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pushmail.client.daemon import WatchDaemon
from pushmail.client.settings import Account, WatchConfig

DEFAULT_RENEW = Account("x", "h", "u").idle_renew
DEFAULT_SERVER_KEEPALIVE = 600.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(root: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    data = root / "data"
    run = [sys.executable, "-m", "pushmail"]
    subprocess.run(
        [*run, "user", "add", "alice@example.org", "--password-stdin", "--data-dir", str(data)],
        input=b"alice-secret\n", check=True, capture_output=True,
    )  # fmt: skip
    (root / "server.toml").write_text("[imap_settings]\nidle_keepalive = 1.0\n")
    imap, lmtp = _free_port(), _free_port()
    proc = subprocess.Popen(
        [*run, "serve", "--data-dir", str(data), "--config", str(root / "server.toml"),
         "--imap", f"127.0.0.1:{imap}", "--imaps", "off", "--smtp", "off",
         "--submission", "off", "--lmtp", f"127.0.0.1:{lmtp}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, imap, lmtp


def _config(root: Path, port: int, renew: float) -> WatchConfig:
    account = Account(
        "bench", "127.0.0.1", "alice@example.org", port=port, tls="none",
        password="alice-secret", idle_renew=renew, response_timeout=10.0, tcp_keepalive=0,
    )  # fmt: skip
    return WatchConfig(root / "state", (account,), log=str(root / "events.jsonl"), debounce=0.05)


async def _until(pred: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.05)


async def _phase(root: Path, port: int, renew: float, body: object) -> dict[str, float]:
    daemon = WatchDaemon(root / "unused.toml", _config(root, port, renew))
    task = asyncio.create_task(daemon.run())
    log = root / "events.jsonl"
    await _until(lambda: log.exists() and '"watching"' in log.read_text())
    try:
        return await body(daemon)  # type: ignore[no-any-return, operator]
    finally:
        daemon.stop.set()
        await task


async def _measure(
    root: Path, imap: int, lmtp: int, n_msgs: int, n_renew: int
) -> dict[str, object]:
    async def renewals(d: WatchDaemon) -> dict[str, float]:
        c = d.counters
        await _until(lambda: c.renewals >= 1)
        b0, r0 = c.bytes_in + c.bytes_out, c.renewals
        await _until(lambda: c.renewals >= r0 + n_renew, timeout=60 + n_renew * 5)
        await asyncio.sleep(0.3)  # the last renewal's answers
        return {"per_renewal": (c.bytes_in + c.bytes_out - b0) / (c.renewals - r0)}

    async def keepalives(d: WatchDaemon) -> dict[str, float]:
        c = d.counters
        await _until(lambda: c.keepalives >= 1, timeout=30)
        b0, k0 = c.bytes_in + c.bytes_out, c.keepalives
        await _until(lambda: c.keepalives >= k0 + 2, timeout=60)
        return {"per_keepalive": (c.bytes_in + c.bytes_out - b0) / (c.keepalives - k0)}

    async def messages(d: WatchDaemon) -> dict[str, float]:
        c = d.counters
        b0 = c.bytes_in + c.bytes_out
        for i in range(n_msgs):
            msg = f"From: bob@example.net\r\nSubject: bench {i}\r\n\r\nhello\r\n".encode()
            await asyncio.to_thread(_lmtp, lmtp, msg)
            await _until(lambda n=i + 1: c.notified >= n)
            await asyncio.sleep(0.1)
        return {"per_message": (c.bytes_in + c.bytes_out - b0) / n_msgs}

    fig: dict[str, float] = {}
    fig |= await _phase(root, imap, 0.5, renewals)
    fig |= await _phase(root, imap, 3600.0, keepalives)
    fig |= await _phase(root, imap, 3600.0, messages)
    per_hour_renew = 3600 / DEFAULT_RENEW * fig["per_renewal"]
    kept = DEFAULT_RENEW >= DEFAULT_SERVER_KEEPALIVE  # else renewals keep the server quiet
    per_hour_keep = 3600 / DEFAULT_SERVER_KEEPALIVE * fig["per_keepalive"] if kept else 0.0
    return {
        "bench": "watch_cost",
        "server": "pushmail",
        "idle_renew_s": DEFAULT_RENEW,
        "server_idle_keepalive_s": DEFAULT_SERVER_KEEPALIVE,
        "bytes_per_renewal": round(fig["per_renewal"], 1),
        "bytes_per_server_keepalive": round(fig["per_keepalive"], 1),
        "bytes_per_idle_hour": round(per_hour_renew + per_hour_keep),
        "bytes_per_notified_message": round(fig["per_message"], 1),
        "messages": n_msgs,
        "renewals_measured": n_renew,
    }


def _lmtp(port: int, msg: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port) as s:
        s.sendmail("bob@example.net", ["alice@example.org"], msg)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--renewals", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, imap, lmtp = _start_server(root)
        try:
            time.sleep(1.5)
            result = asyncio.run(_measure(root, imap, lmtp, args.messages, args.renewals))
        except Exception as e:  # a side that could not be measured
            print(json.dumps({"bench": "watch_cost", "error": repr(e)}))
            return 1
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
