"""Process helpers for benchmarks: tree memory from /proc, child setup, free ports.

Why a tree and not one pid: Dovecot runs one ``imap`` process per connection under a
master, and pushmail may grow worker processes; either way the honest cost of an idle
session is what the *whole* server holds. RSS counts shared pages (libc, the Python
interpreter, Dovecot's libraries) once per process, so for a forking server the sum of
RSS overstates memory; PSS (proportional set size, from ``smaps_rollup``) divides each
shared page among its sharers and is the fairer figure; but a process that starts
later and maps the same files (a Python client sharing libpython with a Python server)
lowers it, so we also give USS (private pages only), which nothing else can move.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class TreeMemory:
    """Summed memory of a set of processes, in kilobytes."""

    processes: int
    rss_kb: int
    pss_kb: int
    uss_kb: int  # private pages only: immune to other programs mapping the same files

    def minus(self, baseline: TreeMemory) -> TreeMemory:
        """Return the growth since *baseline* (what the sessions added)."""
        return TreeMemory(
            processes=self.processes - baseline.processes,
            rss_kb=self.rss_kb - baseline.rss_kb,
            pss_kb=self.pss_kb - baseline.pss_kb,
            uss_kb=self.uss_kb - baseline.uss_kb,
        )


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat, or None if the process is gone.

    The command name in field 2 may contain spaces and parentheses, so we split after
    the *last* ``)``.
    """
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])  # field 22: starttime


def snapshot_tree(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of *root* and its descendants, to kill later without hitting
    an unrelated process that reused a pid."""
    found = []
    for pid in descendants(root):
        started = _start_time(pid)
        if started is not None:
            found.append((pid, started))
    return found


def kill_snapshot(snapshot: list[tuple[int, int]]) -> None:
    """SIGKILL each process of *snapshot* that is still the same process."""
    for pid, started in snapshot:
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def descendants(root: int) -> list[int]:
    """Return *root* and every live process below it (any depth)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir(_PROC):
        if not entry.isdigit():
            continue
        parent = _parent_of(int(entry))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        if (_PROC / str(pid)).exists():
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


_ROLLUP_KEYS = {"Rss:": 0, "Pss:": 1, "Private_Clean:": 2, "Private_Dirty:": 2}


def _rollup_kb(pid: int) -> tuple[int, int, int] | None:
    """(Rss, Pss, Private) in kB from smaps_rollup, or None if the process vanished."""
    try:
        text = (_PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return None
    sizes = [0, 0, 0]
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in _ROLLUP_KEYS:
            sizes[_ROLLUP_KEYS[parts[0]]] += int(parts[1])
    return sizes[0], sizes[1], sizes[2]


def tree_memory(root: int) -> TreeMemory:
    """Sum RSS, PSS and USS over *root*'s process tree."""
    count = rss = pss = uss = 0
    for pid in descendants(root):
        sizes = _rollup_kb(pid)
        if sizes is None:
            continue
        count += 1
        rss += sizes[0]
        pss += sizes[1]
        uss += sizes[2]
    return TreeMemory(processes=count, rss_kb=rss, pss_kb=pss, uss_kb=uss)


def log(tag: str, message: str) -> None:
    """Progress goes to stderr; stdout is reserved for the one JSON line."""
    print(f"[{tag}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race, fine for a benchmark)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile() -> int:
    """Lift this process's fd soft limit to the hard limit; return the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def child_preexec() -> None:
    """Pre-exec hook for every process a benchmark starts.

    Lifts the fd limit (servers and clients hold thousands of sockets) and asks the
    kernel to SIGTERM the child if the benchmark dies, so even a SIGKILLed run leaves
    no servers behind (``PR_SET_PDEATHSIG``; Linux only, ignored elsewhere).
    """
    raise_nofile()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 == PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_for_greeting(
    port: int, greeting: bytes, deadline: float, proc: subprocess.Popen[bytes]
) -> None:
    """Poll until the listener answers with *greeting*, or fail clearly."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(256).startswith(greeting):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server did not answer on port {port}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by *pids* (gone processes count 0).

    Why: to show which side of a benchmark was busy. If the client processes used
    nearly all of their cores while the server idled, the client was the bottleneck.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / ticks


def tcp_socket_memory_kb() -> int:
    """The kernel's memory for all TCP sockets (``/proc/net/sockstat`` ``TCP: mem``,
    in pages), in kB. System-wide: on loopback it counts client and server buffers."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    for line in (_PROC / "net" / "sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1]) * page_kb
    return 0


def slab_kb() -> int:
    """The kernel's slab memory (``/proc/meminfo`` ``Slab``), in kB. System-wide: the
    growth over a run counts each loopback connection's kernel objects (socket, file,
    epoll entry) for both ends, client and server."""
    for line in (_PROC / "meminfo").read_text().splitlines():
        if line.startswith("Slab:"):
            return int(line.split()[1])
    return 0


def system_busy_seconds() -> float:
    """CPU time all processes of the machine have used since boot (``/proc/stat``).

    Why: on a shared machine, the part of it that neither the server nor the clients
    used shows how much other load competed with the benchmark."""
    fields = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def system_steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests while this machine wanted it
    (``/proc/stat``'s steal column, part of ``system_busy_seconds``).

    Why: on a virtual machine, a run whose server and clients both needed more CPU
    than usual for the same work often ran while the host was busy."""
    fields = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    return int(fields[7]) / os.sysconf("SC_CLK_TCK")
