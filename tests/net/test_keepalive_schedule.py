"""The keepalive schedule: never later than the interval, one keepalive per interval
on a quiet connection, one user's connections aligned, users spread."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from pushmail.net.keepalive import keepalive_due, user_phase

INTERVAL = 600.0


@given(
    last_write=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    user_id=st.integers(min_value=1, max_value=2**40),
    interval=st.floats(min_value=0.1, max_value=7200),
)
def test_due_is_after_the_write_and_never_later_than_the_interval(
    last_write: float, user_id: int, interval: float
) -> None:
    due = keepalive_due(last_write, user_id, interval)
    # Between a quarter of the interval and the interval after the write.
    slack = 1e-6 * max(1.0, last_write)  # float rounding
    assert last_write + interval / 4 - slack <= due
    assert due <= last_write + interval + slack


def sweep_times(start: float, until: float, period: float) -> list[float]:
    """Sweeps on the wall clock's multiples of the period, as the housekeeper runs."""
    t = (start // period + 1) * period
    out = []
    while t < until:
        out.append(t)
        t += period
    return out


def keepalives(first_write: float, user_id: int, until: float, period: float) -> list[float]:
    """The times a quiet connection gets keepalives, driven like the housekeeper."""
    last, sent = first_write, []
    for now in sweep_times(first_write, until, period):
        if now >= keepalive_due(last, user_id, INTERVAL):
            sent.append(now)
            last = now
    return sent


def test_a_quiet_connection_gets_one_keepalive_per_interval() -> None:
    sent = keepalives(1000.3, 42, 1000.3 + 10 * INTERVAL, 5.0)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) >= 9
    assert all(abs(g - INTERVAL) < 1e-6 for g in gaps), gaps


def test_one_users_connections_get_their_keepalives_together() -> None:
    rng = random.Random(7)
    writes = [rng.uniform(0, INTERVAL) for _ in range(5)]  # five devices, any time
    runs = [keepalives(w, 42, 5 * INTERVAL, 5.0) for w in writes]
    # After the first keepalive of each, all fall on the same sweeps.
    assert len({tuple(r[1:4]) for r in runs}) == 1, runs


def test_users_are_spread_over_the_interval() -> None:
    phases = [user_phase(uid, INTERVAL) for uid in range(1, 10_001)]
    buckets = [0] * 120  # the 120 five-second sweeps of one 600 s interval
    for p in phases:
        assert 0 <= p < INTERVAL
        buckets[int(p // 5.0)] += 1
    # Evenly spread: each sweep gets close to 1/120 of the users.
    assert max(buckets) < 2 * 10_000 / 120, buckets
    assert min(buckets) > 10_000 / 120 / 2, buckets


def test_connections_that_connected_together_do_not_get_keepalives_together() -> None:
    dues = [keepalive_due(5000.0, uid, INTERVAL) for uid in range(1, 1001)]
    sweeps = {int(d // 5.0) for d in dues}
    assert len(sweeps) >= 55  # a thousand users who connected in the same second
