"""What push costs a phone (issue 20): measured bytes per step, and the model built on them.

    .venv/bin/python bench/push_cost.py --json                 # measure, model, one JSON line
    .venv/bin/python bench/push_cost.py --json --plot docs     # and write the PNGs
    .venv/bin/python bench/push_cost.py --quick --json         # the test's minimum scale

pushmail runs with TLS in a network namespace behind a veth pair (MTU 1500); the
script is the phone and counts whole packets (IP + TCP + TLS) on its own connections
(``wire_capture.py``, ``cost_scenarios.py``). Needs root. The model (``cost_model.py``)
turns the unit costs into bytes, radio wake-ups and energy per day; ``docs/cost.md``
explains both. Progress goes to stderr; the JSON object to stdout (and, unless
``--no-save``, to ``docs/cost.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import cost_model
import cost_scenarios as sc
from cost_rig import running_rig
from wire_capture import CaptureUnavailable

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[push_cost] {message}", file=sys.stderr, flush=True)


def measure(quick: bool, chain: bool = True) -> dict[str, object]:
    sizes = [2000] if quick else [2000, 20000, 200000]
    names = ["full_login", "resumed_login"] if quick else list(sc.RECONNECTS)
    reps = 1 if quick else 3
    with running_rig(keepalive=5.0, chain=chain) as rig:
        phone = sc.Phone(rig)  # type: ignore[arg-type]
        out: dict[str, object] = {}
        log("alerts")
        out["alerts"] = sc.alerts(phone)
        log("keepalive cycles")
        out["keepalive"] = sc.keepalives(phone, tcp_probes=1 if quick else 3, reps=reps)
        log("announcements over IDLE")
        out["idle"] = sc.announce_idle(phone, sizes, reps)
        log("announcements over NOTIFY")
        out["notify"] = sc.announce_notify(phone, reps)
        out["notify"] |= sc.announce_notify_push(phone, reps)
        log("reconnects")
        out["reconnect"] = sc.reconnects(phone, names)
        log("polls")
        out["poll"] = sc.poll_cycles(phone)
        out["certificate_der_bytes"] = rig.cert_sizes or "self-signed P-256 (pushmail default)"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the JSON object (default)")
    p.add_argument("--quick", action="store_true", help="fewest steps (the test's mode)")
    p.add_argument("--plot", type=Path, help="write the PNGs into this directory")
    p.add_argument("--no-save", action="store_true", help="do not write docs/cost.json")
    p.add_argument(
        "--self-signed",
        action="store_true",
        help="pushmail's own one-certificate default instead of a CA chain",
    )
    p.add_argument("--from-json", type=Path, help="model and plot a saved measurement")
    args = p.parse_args(argv)
    started = time.monotonic()
    if args.from_json is not None:
        measured = json.loads(args.from_json.read_text())["measured"]
    else:
        try:
            measured = measure(args.quick, not args.self_signed)
        except CaptureUnavailable as e:
            print(json.dumps({"bench": "push_cost", "error": f"cannot capture: {e}"}))
            return 2
    units = cost_model.unit_costs(measured)
    result: dict[str, object] = {
        "bench": "push_cost",
        "quick": args.quick,
        "certificate": "self-signed" if args.self_signed else "leaf + intermediate (CA chain)",
        "units": units,
        "break_even_msgs_per_day": cost_model.break_even_table(units),
        "keepalive_learning": cost_model.learning_savings(units),
        "per_day": cost_model.examples(units),
        "cited": cost_model.CITED,
        "measured": measured,
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.plot is not None:
        import cost_plot

        result["plots"] = cost_plot.write_plots(units, args.plot)
    text = json.dumps(result, sort_keys=True)
    if not args.no_save and not args.quick:
        (ROOT / "docs" / "cost.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
