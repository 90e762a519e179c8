"""Learning the longest keepalive the current network's NAT tolerates.

A fixed renewal interval is wrong everywhere: below the NAT's idle timeout it wakes
the radio more often than needed (each renewal is one radio wake-up, ~12 J on LTE,
see docs/cost.md); above it the connection dies silently at every renewal. Mobile
push services adapt their heartbeat instead; so does this.

How: start at ``keepalive_min`` and double after ``confirm`` renewals in a row were
answered, up to ``keepalive_max``. A renewal left unanswered (the link died silently
while idle) marks that interval as too long: the next tries go half-way between the
longest interval that survived and the shortest that did not, until the two are
within an eighth of each other; then the watcher renews at 95 % of the longest that
survived. After ``reprobe_after`` answered renewals there, the interval that died is
tried once more (one lost connection if it dies again), because NAT timers change
and a one-off loss (a tunnel, a lift) must not pin the interval low for ever. A
loss at or below the known-good interval halves it.

What was learnt is kept per network (the default gateway and its interface, read
from ``/proc/net/route``), in ``<state_dir>/keepalive.json``, so a phone back on its
home Wi-Fi starts from what that router allowed last time. What counts as a death is
a renewal left unanswered or answered by a reset or EOF (some NATs answer for a
forgotten mapping with RST); a BYE or a refused login says nothing about the NAT.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pushmail.client.heartbeat import Beat

__all__ = [
    "KeepaliveLearner",
    "Learning",
    "LearningBeat",
    "default_gateway",
    "learner_for",
    "make_beat",
    "settle_interval",
]

log = logging.getLogger("pushmail.watch")

FILE = "keepalive.json"
MAX_NETWORKS = 64  # remembered networks; the least recently used is forgotten
SETTLE_FACTOR = 0.95
RESOLUTION = 0.125  # stop searching when (ceiling - floor) <= ceiling * this


@dataclass
class Learning:
    """What is known of one network's NAT (seconds)."""

    interval: float
    floor: float = 0.0  # longest interval answered
    ceiling: float = 0.0  # shortest interval that died; 0 = none known
    streak: int = 0  # answered renewals in a row at ``interval``
    settled: bool = False
    used: int = 0  # a use counter, to forget the least recently used network


def default_gateway(route: Path = Path("/proc/net/route")) -> str:
    """``iface:gateway`` of the default route, or ``unknown`` (not Linux, no route)."""
    try:
        lines = route.read_text().splitlines()[1:]
    except OSError:
        return "unknown"
    for line in lines:
        f = line.split()
        if len(f) >= 3 and f[1] == "00000000":
            return f"{f[0]}:{f[2]}"
    return "unknown"


class KeepaliveLearner:
    """The renewal interval of one account's idling connections, learnt per network."""

    def __init__(
        self,
        low: float,
        high: float,
        path: Path | None = None,
        network: Callable[[], str] = default_gateway,
        confirm: int = 2,
        reprobe_after: int = 300,
    ) -> None:
        self.low, self.high = low, max(low, high)
        self.path = path
        self.network = network
        self.confirm = confirm
        self.reprobe_after = reprobe_after
        self._nets: dict[str, Learning] = self._load()
        self._clock = max((n.used for n in self._nets.values()), default=0)
        self.changes: list[tuple[str, float]] = []  # (why, new interval), for the log
        self.on_change: Callable[[str, float], None] | None = None

    # -- what the watcher asks and tells ----------------------------------------------
    def interval(self) -> float:
        return self._current().interval

    def answered(self, waited: float) -> None:
        """A renewal after ``waited`` seconds of silence was answered."""
        n = self._current()
        if waited + 1e-6 < n.interval * 0.5:
            return  # an early renewal (news, a network change) proves little
        n.floor = max(n.floor, min(waited, n.interval))
        n.streak += 1
        if n.settled:
            if n.streak >= self.reprobe_after and n.ceiling:
                # Try the interval that died once more; if it dies again, the gap is
                # already small and the learner settles back at once.
                target, n.ceiling, n.settled, n.streak = n.ceiling, 0.0, False, 0
                self._set(n, target, "reprobe")
            return
        if n.streak < self.confirm:
            return
        n.streak = 0
        if n.interval >= self.high:
            n.settled = True
            self._save()
            return
        if n.ceiling:
            if n.ceiling - n.floor <= n.ceiling * RESOLUTION:
                n.settled = True
                self._set(n, max(self.low, n.floor * SETTLE_FACTOR), "settled")
            else:
                self._set(n, (n.floor + n.ceiling) / 2, "longer")
        else:
            self._set(n, min(self.high, n.interval * 2), "longer")

    def died(self) -> None:
        """A renewal went unanswered: the link died while idle at this interval."""
        n = self._current()
        failed = n.interval
        n.streak, n.settled = 0, False
        if n.floor and failed > n.floor:
            n.ceiling = failed if not n.ceiling else min(n.ceiling, failed)
            if n.ceiling - n.floor <= n.ceiling * RESOLUTION:
                n.settled = True
                self._set(n, max(self.low, n.floor * SETTLE_FACTOR), "settled")
            else:
                self._set(n, (n.floor + n.ceiling) / 2, "shorter")
        else:  # even the known-good interval died: the network got worse
            n.ceiling = failed
            n.floor = max(self.low, failed / 2) if failed > self.low else 0.0
            self._set(n, max(self.low, failed / 2), "shorter")

    # -- state -------------------------------------------------------------------------
    def _current(self) -> Learning:
        key = self.network()
        n = self._nets.get(key)
        if n is None:
            n = self._nets[key] = Learning(self.low)
            if len(self._nets) > MAX_NETWORKS:
                oldest = min(self._nets, key=lambda k: self._nets[k].used)
                del self._nets[oldest]
        n.interval = min(self.high, max(self.low, n.interval))
        self._clock += 1
        n.used = self._clock
        return n

    def _set(self, n: Learning, interval: float, why: str) -> None:
        n.interval = min(self.high, max(self.low, interval))
        self.changes.append((why, n.interval))
        del self.changes[:-100]
        self._save()
        if self.on_change is not None:
            self.on_change(why, n.interval)

    def _load(self) -> dict[str, Learning]:
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {str(k): Learning(**v) for k, v in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError) as e:  # a damaged file: start over
            log.warning("ignoring %s: %s", self.path, e)
            return {}

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({k: asdict(v) for k, v in self._nets.items()}))
            os.replace(tmp, self.path)


def settle_interval(
    nat_timeout: float, low: float = 60.0, high: float = 1740.0, renewals: int = 200
) -> float:
    """Where the learner settles behind a NAT that drops a mapping idle for
    ``nat_timeout`` seconds or more (the cost model uses this)."""
    k = KeepaliveLearner(low, high, network=lambda: "sim")
    for _ in range(renewals):
        interval = k.interval()
        if interval >= nat_timeout:
            k.died()
        else:
            k.answered(interval)
    return k.interval()


class LearningBeat(Beat):
    """A heartbeat beat whose renewal interval comes from a learner, and which tells
    the learner whether each renewal was answered."""

    __slots__ = ("idle_since", "learner", "renewal_waited")

    def __init__(
        self,
        learner: KeepaliveLearner,
        renew: Callable[[], None],
        abort: Callable[[str], None],
        last_heard: Callable[[], float],
        response_timeout: float,
        silence_limit: float | None,
    ) -> None:
        super().__init__(
            renew, abort, last_heard, learner.interval(), response_timeout, silence_limit
        )
        self.learner = learner
        self.renewal_waited: float | None = None
        # When IDLE began; ``started`` may be moved to force a probe (network change),
        # and such a probe says nothing about how long the NAT keeps a mapping.
        self.idle_since = self.started

    def restart(self) -> None:
        super().restart()
        self.idle_since = self.started
        self.renew_every = self.learner.interval()

    def renewing(self) -> None:
        self.renewal_waited = time.monotonic() - self.idle_since

    def answered(self) -> None:
        if self.renewal_waited is not None:
            self.learner.answered(self.renewal_waited)
            self.renewal_waited = None

    def died(self) -> None:
        if self.renewal_waited is not None:
            self.learner.died()
            self.renewal_waited = None

    def server_ended(self) -> None:
        self.renewal_waited = None


def make_beat(
    learner: KeepaliveLearner | None,
    renew: Callable[[], None],
    abort: Callable[[str], None],
    last_heard: Callable[[], float],
    fixed_interval: float,
    response_timeout: float,
    silence_limit: float | None,
) -> Beat:
    """A learning beat when there is a learner, else one renewing every
    ``fixed_interval`` seconds (``keepalive_learn = false``)."""
    if learner is None:
        return Beat(renew, abort, last_heard, fixed_interval, response_timeout, silence_limit)
    return LearningBeat(learner, renew, abort, last_heard, response_timeout, silence_limit)


def learner_for(
    account_name: str,
    state_dir: Path,
    low: float,
    high: float,
    on_change: Callable[[str, float], None] | None = None,
) -> KeepaliveLearner:
    """The learner of one account, remembered in ``<state_dir>/keepalive-<name>.json``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in account_name)
    k = KeepaliveLearner(low, high, state_dir / f"keepalive-{safe}.json")
    k.on_change = on_change
    return k
