"""pushmail against Dovecot from ONE run of ``bench/idle_scale.py``: the table and the
plot of docs/scale.md.

Usage::

    .venv/bin/python bench/scale_compare.py RUN.jsonl --table            # Markdown table
    .venv/bin/python bench/scale_compare.py RUN.jsonl -o docs/scale.png  # the plot

RUN.jsonl holds the JSON lines of one ``idle_scale.py`` invocation that measured both
servers (for example ``--n 10000 --dovecot-n 10000``). The pushmail run compared is the
one at Dovecot's N, so both faced the same plan (users, devices, deliveries). Why one
run: the test machine's speed moves between runs by more than some of the
differences, so figures are only compared within one invocation. matplotlib (the
``bench`` extra) is needed for the plot only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from scale_plot import Run, load, value


@dataclass(frozen=True)
class Row:
    label: str  # what the figure is, for a reader
    path: tuple[str, ...]  # where idle_scale.py puts it
    unit: str
    higher_is_better: bool
    digits: int = 0
    short: str = ""  # the plot's panel title


ROWS = (
    Row(
        "connect storm (sessions set up per second)",
        ("connect_per_s",),
        "/s",
        True,
        short="sessions set up per second",
    ),
    Row(
        "memory per idle session (PSS growth)",
        ("per_session_kb", "pss"),
        "KB",
        False,
        2,
        short="memory per idle session",
    ),
    Row(
        "memory per idle session, whole server / N", ("per_session_total_kb", "pss"), "KB", False, 2
    ),
    Row(
        "new mail → `* EXISTS`, one user's devices, p99",
        ("single", "p99_ms"),
        "ms",
        False,
        1,
        short="new mail → EXISTS, p99",
    ),
    Row(
        "broadcast to every user: deliveries per second",
        ("broadcast", "deliveries_per_s"),
        "/s",
        True,
        short="deliveries per second (LMTP)",
    ),
    Row("broadcast: delivery → `* EXISTS`, p99", ("broadcast", "p99_ms"), "ms", False, 1),
    Row("notifications missed (broadcast)", ("broadcast", "missed"), "", False),
    Row("sessions closed by the server", ("closed_by_server",), "", False),
)
# The four the plot shows: one per question a reader asks (how many, how big, how fast
# to hear of mail, how fast to take mail in).
PLOTTED = (0, 1, 3, 4)


def pick(runs: list[Run]) -> tuple[Run, Run]:
    """The last Dovecot run and the last pushmail run at the same N."""
    dovecots = [r for r in runs if r.get("server") == "dovecot"]
    if not dovecots:
        raise ValueError("no Dovecot run in the input (run idle_scale.py with --dovecot-n)")
    dovecot = dovecots[-1]
    same_n = [r for r in runs if r.get("server") == "pushmail" and r.get("n") == dovecot["n"]]
    if not same_n:
        raise ValueError(f"no pushmail run at Dovecot's N = {dovecot['n']}")
    return same_n[-1], dovecot


def _fmt(x: float | None, row: Row) -> str:
    if x is None:
        return "—"
    if row.unit == "ms" and x >= 10_000:
        return f"{x / 1000:,.0f} s"
    text = f"{x:,.{row.digits}f}"
    return f"{text} {row.unit}".strip()


def _ratio(p: float | None, d: float | None, row: Row) -> str:
    """How many times better pushmail is (below 1: worse); blank where meaningless."""
    if p is None or d is None or not row.unit or p <= 0 or d <= 0:
        return ""
    r = p / d if row.higher_is_better else d / p
    return f"{r:,.1f}×" if r < 100 else f"{r:,.0f}×"


def table(pushmail: Run, dovecot: Run) -> str:
    n = int(pushmail["n"])
    head = (
        f"| N = {n:,} idle sessions | pushmail ({pushmail.get('workers')} workers) "
        f"| Dovecot {dovecot.get('version', '')} | pushmail better by |"
    )
    lines = [head, "|---|---|---|---|"]
    for row in ROWS:
        p, d = value(pushmail, *row.path), value(dovecot, *row.path)
        lines.append(f"| {row.label} | {_fmt(p, row)} | {_fmt(d, row)} | {_ratio(p, d, row)} |")
    return "\n".join(lines)


def plot(pushmail: Run, dovecot: Run, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(13, 3.6))
    for ax, index in zip(axes, PLOTTED, strict=True):
        row = ROWS[index]
        values = [value(pushmail, *row.path) or 0.0, value(dovecot, *row.path) or 0.0]
        bars = ax.bar(["pushmail", "Dovecot"], values, color=["#2a7ab0", "#b0602a"])
        ax.bar_label(bars, labels=[_fmt(v, row) for v in values], padding=2)
        better = "higher is better" if row.higher_is_better else "lower is better"
        ax.set_title(f"{row.short}\n({better})", fontsize="medium")
        ax.set_ylim(0, max(values) * 1.2 or 1)
        ax.tick_params(axis="y", labelsize="small")
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"{int(pushmail['n']):,} idle IMAP sessions, one run of bench/idle_scale.py")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("input", type=Path, help="the JSON lines of one idle_scale.py run")
    p.add_argument("-o", "--output", type=Path, help="write the plot (PNG) here")
    p.add_argument("--table", action="store_true", help="print the Markdown table")
    args = p.parse_args(argv)
    try:
        pushmail, dovecot = pick(load([args.input]))
    except ValueError as e:
        print(f"scale_compare: {e}", file=sys.stderr)
        return 1
    if args.table or args.output is None:
        print(table(pushmail, dovecot))
    if args.output is not None:
        plot(pushmail, dovecot, args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
