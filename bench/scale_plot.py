"""Plot idle_scale.py's JSON lines: memory per idle session and p99 latency against N.

Usage::

    .venv/bin/python bench/scale_plot.py RESULTS.jsonl [...] -o by-n.png

Each input line is one run of ``bench/idle_scale.py``; lines with ``"error"`` and lines
of other benchmarks are skipped. pushmail runs with empty mailboxes form the lines;
runs with filled mailboxes (``fill`` > 0) and Dovecot runs are drawn as separate
markers, so the eye can check that memory does not grow with mailbox size and where
Dovecot stands. matplotlib is a bench-only dependency.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

Run = dict[str, Any]


def load(paths: list[Path]) -> list[Run]:
    """Every usable idle_scale run in *paths*, in file order."""
    runs: list[Run] = []
    for path in paths:
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            run = json.loads(line)
            if run.get("bench") == "idle_scale" and "error" not in run:
                runs.append(run)
    return runs


def value(run: Run, *path: str) -> float | None:
    """``run[path[0]][path[1]]...`` as a float, or None if missing."""
    node: Any = run
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return float(node) if isinstance(node, int | float) else None


def series(runs: list[Run], *path: str) -> tuple[list[int], list[float]]:
    """(N, figure) pairs sorted by N, skipping runs without the figure."""
    points = sorted((int(r["n"]), v) for r in runs if (v := value(r, *path)) is not None)
    return [n for n, _ in points], [v for _, v in points]


def groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs by server, with runs off the default plan (U = min(10,000, N/2) users, empty
    mailboxes) in groups of their own, named by what differs."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        label = str(run.get("server"))
        n, users = int(run.get("n", 0)), run.get("users")
        if users is not None and users != max(1, min(10_000, n // 2)):
            label += f", {users:,} users"
        if run.get("fill"):
            label += f", {run['fill']:,} msgs/mailbox"
        if run.get("tls"):
            label += ", TLS"
        out.setdefault(label, []).append(run)
    return out


def plot(runs: list[Run], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, (mem, lat) = plt.subplots(1, 2, figsize=(13, 7))
    for label, members in groups(runs).items():
        style = "o-" if label == "pushmail" else "s"
        for key, marker in (("pss", style), ("rss", style.replace("-", "--"))):
            xs, ys = series(members, "per_session_kb", key)
            if xs:
                mem.plot(xs, ys, marker, label=f"{label} ({key.upper()})")
        for phase, marker in (("single", style), ("broadcast", style.replace("-", ":"))):
            xs, ys = series(members, phase, "p99_ms")
            if xs:
                lat.plot(xs, ys, marker, label=f"{label} {phase} p99")
    mem.set(xscale="log", yscale="log", xlabel="idle sessions N", ylabel="kB per idle session")
    mem.set_title("Server memory per idle session (growth over baseline)")
    lat.set(xscale="log", yscale="log", xlabel="idle sessions N", ylabel="ms")
    lat.set_title("Delivery (LMTP 250) -> * n EXISTS, p99")
    for axes in (mem, lat):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("inputs", nargs="+", type=Path, help="files of idle_scale JSON lines")
    p.add_argument("-o", "--output", type=Path, default=Path("scale-by-n.png"))
    args = p.parse_args(argv)
    runs = load(args.inputs)
    if not runs:
        print("no idle_scale runs in the input", file=sys.stderr)
        return 1
    plot(runs, args.output)
    print(f"wrote {args.output} from {len(runs)} runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
