"""When an idling connection gets its ``* OK Still here``: spread over users, aligned
within one user.

A keepalive must reach a connection before it has been silent for ``interval``
(NAT gateways drop quiet mappings). Sending each one exactly ``interval`` after the
connection's last write would bunch them: after a restart, the clients that
reconnected in the same second would all get theirs in the same sweep, every time.
And a phone with several connections (one per folder, or one per account on this
server) would wake its radio once per connection.

So each user has a fixed phase on a grid of period ``interval`` (derived from the
user id alone, so different users are spread evenly over the interval), and a
connection's keepalive falls on the last grid point of its user at or before
``last_write + interval``, or, when that point would come less than a quarter of an
interval after the last write, half an interval after it (the next one, a little
more than half an interval later, is on the grid again). So a keepalive never comes
later than ``interval`` after the last write, nor sooner than a quarter of it; a
connection that hears nothing else gets exactly one per ``interval``; and all
connections of one user, after at most two keepalives, fall on the same grid points
and get theirs in the same sweep, in every worker process: the grid is on the wall
clock, which all processes share.
"""

from __future__ import annotations

import math

_GOLDEN = 0x9E3779B1  # Knuth's multiplicative hash: consecutive ids spread evenly


def user_phase(user_id: int, interval: float) -> float:
    """This user's offset within one interval, in [0, interval)."""
    return ((user_id * _GOLDEN) & 0xFFFFFFFF) / 2.0**32 * interval


def keepalive_due(last_write: float, user_id: int, interval: float) -> float:
    """The wall-clock time at which a connection last written at ``last_write``
    (wall clock) gets its keepalive: in [last_write + interval/4, last_write +
    interval], on the user's grid where that is possible."""
    phase = user_phase(user_id, interval)
    point = phase + math.floor((last_write + interval - phase) / interval) * interval
    return point if point - last_write >= interval / 4 else point + interval / 2
