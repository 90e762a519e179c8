"""``pushmail status``: what the running server is doing, from the server itself.

Worker 0 listens on a Unix socket, ``<data-dir>/run/status.sock``; a client connects
and reads one JSON document (``exposition.summary``), then the server closes. Nothing
is read from the client, so there is nothing to limit on that side. The socket is in
the data directory (mode 0700): whoever may read the mail may read the status. It
works whether the metrics listener is on or off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushmail.metrics import run_dir

if TYPE_CHECKING:  # the client side (pushmail status) imports nothing of prometheus-client
    from pushmail.metrics.listener import Limited

SOCKET_NAME = "status.sock"
MAX_ANSWER = 1 << 20  # bytes a client reads at most
CLIENT_TIMEOUT = 5.0
_SUN_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


class StatusUnavailable(Exception):
    """No server answers for this data directory."""


def socket_path(data_dir: Path) -> Path:
    return run_dir(data_dir) / SOCKET_NAME


def _bindable(path: Path) -> tuple[str, int | None]:
    """``path``, or the same file through ``/proc/self/fd`` when it is too long for
    ``sun_path`` (with the directory descriptor to close afterwards)."""
    if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


async def start_status(
    data_dir: Path, answer: Callable[[], Awaitable[bytes]], limited: Limited
) -> asyncio.Server:
    """Serve ``await answer()`` to each client of the status socket."""
    path = socket_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that did not stop cleanly

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await answer())
        await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT)

    address, fd = _bindable(path)
    try:
        return await asyncio.start_unix_server(limited.serve(handle), address)
    finally:
        if fd is not None:
            os.close(fd)


def read_status(data_dir: Path) -> dict[str, Any]:
    """The running server's summary; StatusUnavailable when none answers."""
    path = socket_path(data_dir)
    if not path.exists():
        raise StatusUnavailable(f"no server is running for {data_dir} (no {path})")
    address, fd = _bindable(path)
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CLIENT_TIMEOUT)
            sock.connect(address)
            size = 0
            while size <= MAX_ANSWER and (chunk := sock.recv(65536)):
                chunks.append(chunk)
                size += len(chunk)
    except (ConnectionRefusedError, FileNotFoundError):
        raise StatusUnavailable(
            f"no server is running for {data_dir} ({path} is left from an earlier run)"
        ) from None
    except OSError as e:
        raise StatusUnavailable(f"cannot read the server's status from {path}: {e}") from None
    finally:
        if fd is not None:
            os.close(fd)
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        raise StatusUnavailable(f"the server at {path} sent no status (stopping?)") from None
    if not isinstance(data, dict):
        raise StatusUnavailable(f"the server at {path} sent no status")
    return data


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h {m}m"
    return f"{h}h {m}m" if h else f"{m}m {s}s"


def format_status(st: dict[str, Any], now: float | None = None) -> list[str]:
    """The summary for a human."""
    now = time.time() if now is None else now
    workers = st.get("workers", [])
    started = min((w["started"] for w in workers if "started" in w), default=None)
    up = f", up {_duration(now - started)}" if started is not None else ""
    n = len(workers)
    lines = [f"pushmail {st.get('version') or '?'}: {n} worker{'s' * (n != 1)}{up}"]
    ses = st.get("sessions", {})
    lines.append(
        "IMAP sessions: {} active, {} idling, {} hibernated".format(
            ses.get("active", 0), ses.get("idling", 0), ses.get("hibernated", 0)
        )
    )
    lines.append("")
    lines.append(
        f"{'worker':>6} {'pid':>8} {'active':>7} {'idling':>7} {'hibernated':>10} "
        f"{'connections':>11} {'loop lag':>9}"
    )
    for w in workers:
        s = w.get("sessions", {})
        lines.append(
            f"{w['worker']:>6} {w['pid']:>8} {s.get('active', 0):>7} {s.get('idling', 0):>7} "
            f"{s.get('hibernated', 0):>10} {w.get('connections', 0):>11} "
            f"{w.get('loop_lag_ms', 0.0):>6.1f} ms"
        )
    lines.append("")
    lines.append("listening:")
    for entry in st.get("listeners", []):
        lines.append(f"  {entry['service']:<11} {entry['address']}")
    lines.append("")
    lines.append(f"alert queue: {st.get('alert_queue', 0)} waiting")
    t = st.get("totals", {})
    lines.append(
        "since start: {} connections, {} logins ({} failed), {} IMAP commands, "
        "{} recipients stored, {} alerts sent".format(
            t.get("connections", 0),
            t.get("logins", 0),
            t.get("failed_logins", 0),
            t.get("imap_commands", 0),
            t.get("recipients_stored", 0),
            t.get("alerts_sent", 0),
        )
    )
    if t.get("store_errors") or t.get("bus_errors"):
        lines.append(f"errors: {t.get('store_errors', 0)} store, {t.get('bus_errors', 0)} bus")
    return lines
