"""Delivery → ``EXISTS`` latency, measured in the worker that tells the client.

A hint of new mail carries the wall-clock time of its commit
(``MailboxChanged.at``; every process of a server is on one machine, so one clock).
When the idle hub dispatches such a hint to a mailbox that has idlers in this
process, ``arrived`` keeps the earliest such time for that mailbox; when an idling
session of it (a full connection or a hibernated record) has written its ``EXISTS``,
``told`` observes the difference once. So a mailbox with several idlers yields one
figure per delivery: the time until the first of them was told.

No per-session state: one dict entry per mailbox with a hint not yet reported,
bounded (a session that leaves before reporting would leave its entry behind).
"""

from __future__ import annotations

import time

from pushmail.metrics.series import WAKEUP_SECONDS

MAX_PENDING = 65536

_pending: dict[tuple[int, int], float] = {}


def arrived(user_id: int, mailbox_id: int, at: float) -> None:
    """New mail committed at ``at`` for a mailbox idled on in this process."""
    key = (user_id, mailbox_id)
    if key not in _pending:
        if len(_pending) >= MAX_PENDING:
            _pending.clear()  # stale entries of sessions gone meanwhile
        _pending[key] = at


def told(user_id: int, mailbox_id: int) -> None:
    """An idling session of the mailbox was sent its ``EXISTS``."""
    at = _pending.pop((user_id, mailbox_id), None)
    if at is not None:
        WAKEUP_SECONDS.observe(max(0.0, time.time() - at))


def checked(user_id: int, mailbox_id: int) -> None:
    """A woken session found nothing new (another session or command reported it):
    forget the hint, so a later delivery is not measured from this one."""
    _pending.pop((user_id, mailbox_id), None)
