"""The PNGs of docs/cost.md: bytes and energy per day against messages per day, one
line per strategy, one panel per NAT timeout, break-even points marked (matplotlib,
from the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path

import cost_model as cm

STRATEGIES = {
    "idle": "IDLE (learned keepalive)",
    "idle_notify": "IDLE + NOTIFY",
    "true_push": "true push (shared channel)",
    "true_push_own_channel": "true push (own channel)",
    "poll_15": "poll every 15 min",
}


def write_plots(u: dict[str, float], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, label, unit, scale in (
        ("bytes", "bytes per day", "KB/day", 1 / 1000),
        ("energy", "LTE radio energy per day", "J/day", 1.0),
    ):
        fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, sharey=True)
        for ax, nat in zip(axes.flat, cm.NAT_TIMEOUTS_MIN, strict=True):
            for strategy, name in STRATEGIES.items():
                ys = [_value(key, strategy, m, nat, u) * scale for m in cm.MESSAGES]
                ax.plot(cm.MESSAGES, ys, label=name)
            be = cm.break_even("idle", "true_push", nat, u, key)
            if 0 < be <= cm.MESSAGES[-1]:
                y = _value(key, "idle", be, nat, u) * scale
                ax.plot([be], [y], "ko")
                ax.annotate(f"{be:.3g}/day", (be, y), textcoords="offset points", xytext=(6, -12))
            else:
                where = ax.transAxes
                ax.text(0.03, 0.95, f"IDLE = true push at {be:,.0f}/day", transform=where,
                        va="top", fontsize=8)  # fmt: skip
            ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
            if nat == cm.NAT_TIMEOUTS_MIN[0]:
                where = ax.get_xaxis_transform()
                ax.text(0.52, 0.02, "whitepaper: 1 per 2 days", transform=where,
                        fontsize=7, color="grey")  # fmt: skip
            k = cm.keepalive_interval(nat)
            ax.set_title(f"NAT timeout {nat} min (keepalive {k:.1f} min)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
        for ax in axes[1]:
            ax.set_xlabel("messages per day")
        for ax in axes[:, 0]:
            ax.set_ylabel(unit)
        axes[1, 1].legend(fontsize=8, loc="lower right")
        fig.suptitle(f"What push costs a phone: {label} (dot: IDLE = true push)")
        fig.tight_layout()
        path = out / f"cost-{key}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    return written


def _value(key: str, strategy: str, msgs: float, nat: float, u: dict[str, float]) -> float:
    return cm.metric(strategy, msgs, nat, u, key)
