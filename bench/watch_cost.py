"""What ``pushmail watch`` costs on the wire against pushmail (or Dovecot): one JSON line.

An idle hour is not measured by waiting an hour. The watcher's idle traffic is made of
two repeating exchanges, each measured here over many repetitions with short intervals:

* a renewal (``DONE`` / tagged OK / ``IDLE`` / ``+ idling``), every ``idle_renew``;
* the server's ``* OK Still here``. Pushmail sends it on a per-user grid of period
  ``idle_keepalive``, to a connection silent for at least a quarter of that period
  (``net/keepalive.py``). With renewals every R seconds and the grid's period K > R, a
  connection hears one per grid point when the point falls at least K/4 into its
  renewal cycle, which depends on its phase: on average ``(R - K/4) / R`` of the grid
  points, i.e. half of them for the defaults (one per 20 minutes).

Bytes per idle hour are then computed for the *default* settings (client
``idle_renew`` 300 s, server ``idle_keepalive`` 600 s). Bytes per notified message are
measured directly: N messages delivered over LMTP into INBOX, spaced apart so each is
its own round. Keepalives the compressed time scale lets in during the renewal and
message phases are counted by the watcher and their bytes taken out of those figures.

Both strategies are measured, each reported under its own key of the one JSON line:

* ``notify`` — the default (``mode = "auto"``: the server offers NOTIFY, so one
  connection for all folders, INBOX kept selected); a message is the pushed ``* n
  EXISTS`` and ``* n FETCH (UID ... BODY[HEADER.FIELDS ...])``, nothing sent back. Its
  figures are also the top-level ones;
* ``idle`` — ``mode = "idle"``, one IDLE per folder; a message is EXISTS / DONE /
  UID FETCH / IDLE.

``--server dovecot`` measures the same against a private Debian Dovecot
(``bench/dovecot.py``, root needed; no idle hour is modelled for it), ``--server
both`` both servers in one run (Dovecot's figures under ``dovecot``). The strategy
each run really used is read back from its ``watching`` event. Figures are IMAP
payload bytes in both directions (plaintext IMAP on loopback; TLS adds its record
overhead, TCP/IP its headers).

``--folder NAME`` watches INBOX and NAME and files the messages into NAME by APPEND
from another connection (not counted): the cost of mail in a folder that is not the
one NOTIFY keeps selected.

    .venv/bin/python bench/watch_cost.py [--messages 20] [--renewals 10] [--server both]
        [--folder NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pushmail.client.connection import Counters
from pushmail.client.daemon import WatchDaemon
from pushmail.client.settings import Account, WatchConfig

USER, PASSWORD = "alice@example.org", "alice-secret"
DEFAULT_RENEW = Account("x", "h", "u").idle_renew
DEFAULT_SERVER_KEEPALIVE = 600.0
FAST_RENEW = 0.5  # the compressed time scale of the renewal phase
FAST_KEEPALIVE = 1.0  # the bench server's imap_settings.idle_keepalive


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(root: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    run = [sys.executable, "-m", "pushmail"]
    subprocess.run(
        [*run, "user", "add", USER, "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD.encode() + b"\n", check=True, capture_output=True,
    )  # fmt: skip
    (root / "server.toml").write_text(f"[imap_settings]\nidle_keepalive = {FAST_KEEPALIVE}\n")
    imap, lmtp = _free_port(), _free_port()
    proc = subprocess.Popen(
        [*run, "serve", "--data-dir", str(data), "--config", str(root / "server.toml"),
         "--imap", f"127.0.0.1:{imap}", "--imaps", "off", "--smtp", "off",
         "--submission", "off", "--lmtp", f"127.0.0.1:{lmtp}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, imap, lmtp


@dataclass(frozen=True)
class Plan:
    messages: int
    renewals: int
    folder: str  # where the messages go: INBOX by LMTP, another folder by APPEND

    @property
    def folders(self) -> tuple[str, ...]:
        return ("INBOX",) if self.folder == "INBOX" else ("INBOX", self.folder)


def _config(root: Path, port: int, renew: float, mode: str, plan: Plan) -> WatchConfig:
    account = Account(
        "bench", "127.0.0.1", USER, port=port, tls="none", mode=mode, folders=plan.folders,
        password=PASSWORD, idle_renew=renew, response_timeout=10.0, tcp_keepalive=0,
        keepalive_learn=False,  # a fixed renewal interval: what this benchmark compresses
    )  # fmt: skip
    return WatchConfig(root / "state", (account,), log=str(root / "events.jsonl"), debounce=0.05)


async def _until(pred: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.05)


async def _mid_cycle(
    count: Callable[[], int], at_least: int, half: float, c: Counters
) -> tuple[int, int]:
    """Wait for the count to reach ``at_least``, then half a cycle more: a quiet
    moment between two exchanges, so a sample never splits one. Returns the count
    and the bytes so far."""
    await _until(lambda: count() >= at_least, timeout=60 + at_least * 5)
    await asyncio.sleep(half)
    return count(), c.bytes_in + c.bytes_out


async def _phase(
    root: Path,
    port: int,
    renew: float,
    mode: str,
    plan: Plan,
    body: Callable[[Counters], Awaitable[dict[str, float]]],
) -> dict[str, float]:
    """Run a watcher with ``idle_renew = renew`` until ``body`` has its figures."""
    log = root / "events.jsonl"
    log.unlink(missing_ok=True)
    daemon = WatchDaemon(root / "unused.toml", _config(root, port, renew, mode, plan))
    task = asyncio.create_task(daemon.run())
    n = len(plan.folders)
    await _until(lambda: log.exists() and log.read_text().count('"watching"') >= n)
    try:
        return await body(daemon.counters)
    finally:
        daemon.stop.set()
        await task


def _strategy(root: Path) -> str:
    """How the last run watched INBOX: the ``via`` of its ``watching`` event."""
    for line in (root / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "watching":
            return str(event["via"])
    return "unknown"


async def _keepalives(c: Counters) -> dict[str, float]:
    k0, b0 = await _mid_cycle(lambda: c.keepalives, 1, FAST_KEEPALIVE / 2, c)
    k1, b1 = await _mid_cycle(lambda: c.keepalives, k0 + 2, FAST_KEEPALIVE / 2, c)
    return {"per_keepalive": (b1 - b0) / (k1 - k0)}


async def _renewals(c: Counters, n_renew: int, per_keepalive: float) -> dict[str, float]:
    r0, b0 = await _mid_cycle(lambda: c.renewals, 1, FAST_RENEW / 2, c)
    k0 = c.keepalives
    r1, b1 = await _mid_cycle(lambda: c.renewals, r0 + n_renew, FAST_RENEW / 2, c)
    kept = (c.keepalives - k0) * per_keepalive
    return {"per_renewal": (b1 - b0 - kept) / (r1 - r0)}


async def _messages(
    c: Counters, imap: int, lmtp: int, plan: Plan, per_keepalive: float
) -> dict[str, float]:
    await asyncio.sleep(0.3)  # the catch-up at start is not part of the figure
    b0, k0 = c.bytes_in + c.bytes_out, c.keepalives
    n_msgs = plan.messages
    for i in range(n_msgs):
        msg = f"From: bob@example.net\r\nSubject: bench {i}\r\n\r\nhello\r\n".encode()
        if plan.folder == "INBOX":
            await asyncio.to_thread(_lmtp, lmtp, msg)
        else:  # another client files it (its own connection: not counted)
            await asyncio.to_thread(_append, imap, plan.folder, msg)
        await _until(lambda n=i + 1: c.notified >= n)
        await asyncio.sleep(0.3)  # back in IDLE
    kept = (c.keepalives - k0) * per_keepalive
    return {"per_message": (c.bytes_in + c.bytes_out - b0 - kept) / n_msgs}


def keepalives_per_hour(renew: float, keepalive: float) -> float:
    """Expected ``* OK Still here`` per idle hour from pushmail (see the docstring)."""
    if keepalive <= 0:
        return 0.0
    share = 1.0 if renew >= keepalive else max(0.0, (renew - keepalive / 4) / renew)
    return 3600 / keepalive * share


async def _measure(
    root: Path, imap: int, lmtp: int, plan: Plan, mode: str, server: str
) -> dict[str, object]:
    """One strategy's figures; ``root`` is its own state directory."""
    root.mkdir(parents=True, exist_ok=True)
    fig = await _phase(root, imap, 3600.0, mode, plan, _keepalives)
    ka = fig["per_keepalive"]
    renewals = lambda c: _renewals(c, plan.renewals, ka)  # noqa: E731
    fig |= await _phase(root, imap, FAST_RENEW, mode, plan, renewals)
    messages = lambda c: _messages(c, imap, lmtp, plan, ka)  # noqa: E731
    fig |= await _phase(root, imap, 3600.0, mode, plan, messages)
    out: dict[str, object] = {
        "mode": mode,
        "strategy": _strategy(root),
        "bytes_per_renewal": round(fig["per_renewal"], 1),
        "bytes_per_server_keepalive": round(ka, 1),
    }
    if server == "pushmail":  # the keepalive grid model is pushmail's (see the docstring)
        per_hour_renew = 3600 / DEFAULT_RENEW * fig["per_renewal"]
        per_hour_keep = keepalives_per_hour(DEFAULT_RENEW, DEFAULT_SERVER_KEEPALIVE) * ka
        out["server_keepalives_per_idle_hour"] = keepalives_per_hour(
            DEFAULT_RENEW, DEFAULT_SERVER_KEEPALIVE
        )
        out["bytes_per_idle_hour"] = round(per_hour_renew + per_hour_keep)
    out["bytes_per_notified_message"] = round(fig["per_message"], 1)
    return out


async def _measure_all(
    root: Path, imap: int, lmtp: int, plan: Plan, server: str
) -> dict[str, object]:
    if plan.folder != "INBOX":
        await asyncio.to_thread(_create, imap, plan.folder)
    notify = await _measure(root / "notify", imap, lmtp, plan, "auto", server)
    idle = await _measure(root / "idle", imap, lmtp, plan, "idle", server)
    out: dict[str, object] = {"bench": "watch_cost", "server": server}
    if server == "pushmail":
        out |= {
            "idle_renew_s": DEFAULT_RENEW,
            "server_idle_keepalive_s": DEFAULT_SERVER_KEEPALIVE,
            "bytes_per_idle_hour": notify["bytes_per_idle_hour"],
        }
    return out | {
        "default_strategy": notify["strategy"],
        "bytes_per_notified_message": notify["bytes_per_notified_message"],
        "notify": notify,
        "idle": idle,
        "folders": list(plan.folders),
        "messages_into": plan.folder,
        "messages": plan.messages,
        "renewals_measured": plan.renewals,
    }


def _run_pushmail(root: Path, plan: Plan) -> dict[str, object]:
    proc, imap, lmtp = _start_server(root)
    try:
        _wait_for_port(imap)
        return asyncio.run(_measure_all(root, imap, lmtp, plan, "pushmail"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _run_dovecot(root: Path, plan: Plan) -> dict[str, object]:
    """The same measurement against a private Debian Dovecot (``bench/dovecot.py``;
    needs root). Its keepalive (``imap_idle_notify_interval``, 2 min by default) is
    set to FAST_KEEPALIVE so that its bytes are measured and taken out of the other
    figures as for pushmail; no idle hour is modelled for it."""
    import dovecot  # bench/ is on sys.path when run as a script

    class FastKeepalive(dovecot.DovecotInstance):
        def write_config(self) -> None:
            super().write_config()
            with self.config_path.open("a") as f:
                f.write(f"imap_idle_notify_interval = {int(FAST_KEEPALIVE)} secs\n")

    version = dovecot.ensure_installed()
    work = Path(tempfile.mkdtemp(prefix="pm-dovecot-"))  # not under a 0700 parent
    inst = FastKeepalive(work, [(USER, PASSWORD)], sessions=10)
    try:
        inst.start()
        result = asyncio.run(_measure_all(root, inst.imap_port, inst.lmtp_port, plan, "dovecot"))
        return result | {"version": version}
    finally:
        inst.stop()
        shutil.rmtree(work, ignore_errors=True)


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _create(port: int, folder: str) -> None:
    with imaplib.IMAP4("127.0.0.1", port) as m:
        m.login(USER, PASSWORD)
        m.create(folder)


def _append(port: int, folder: str, msg: bytes) -> None:
    with imaplib.IMAP4("127.0.0.1", port) as m:
        m.login(USER, PASSWORD)
        typ, _ = m.append(folder, "", None, msg)
        if typ != "OK":
            raise RuntimeError(f"APPEND to {folder}: {typ}")


def _lmtp(port: int, msg: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port) as s:
        s.sendmail("bob@example.net", [USER], msg)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--renewals", type=int, default=10)
    p.add_argument("--server", choices=("pushmail", "dovecot", "both"), default="pushmail")
    p.add_argument("--folder", default="INBOX", help="deliver into this folder (watched too)")
    args = p.parse_args()
    plan = Plan(args.messages, args.renewals, args.folder)
    runs = {"pushmail": _run_pushmail, "dovecot": _run_dovecot}
    names = ("pushmail", "dovecot") if args.server == "both" else (args.server,)
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                results.append(runs[name](Path(tmp) / name, plan))
            except Exception as e:  # a side that could not be measured
                print(json.dumps({"bench": "watch_cost", "server": name, "error": repr(e)}))
                return 1
    result = results[0]
    if len(results) > 1:  # pushmail's figures on top, Dovecot's beside them
        result = result | {"dovecot": results[1]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
