"""One coalesced timer for every idling connection (not one per folder).

Each idling connection registers a ``Beat``. The single ``Heartbeat`` task sleeps until
the earliest moment one of them needs attention, and then handles every beat that is
due — a renewal due within ``slack`` seconds is done in the same wakeup, so folders'
renewals line up and a phone's radio wakes once, not once per folder.

What a beat can need:

* **renewal**: ``idle_renew`` seconds after IDLE began, send ``DONE`` (the watcher
  answers the tagged OK by re-issuing IDLE). This keeps NAT mappings and the server's
  autologout at bay, and doubles as a liveness probe.
* **probe timeout**: a ``DONE`` (renewal or the watcher's own) unanswered for
  ``response_timeout`` seconds means the link is dead: abort it.
* **silence**: with ``server_keepalive`` known, hearing nothing for that plus
  ``grace`` means the link is dead: abort it.

Aborting makes the watcher's pending read fail at once, which starts a reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Beat", "Heartbeat"]


class Beat:
    """One idling connection's timers (mutable: the watcher updates it in place)."""

    __slots__ = (
        "abort",
        "last_heard",
        "probe_sent",
        "renew",
        "renew_every",
        "response_timeout",
        "silence_limit",
        "started",
    )

    def __init__(
        self,
        renew: Callable[[], None],
        abort: Callable[[str], None],
        last_heard: Callable[[], float],
        renew_every: float,
        response_timeout: float,
        silence_limit: float | None,
    ) -> None:
        self.renew = renew
        self.abort = abort
        self.last_heard = last_heard
        self.renew_every = renew_every
        self.response_timeout = response_timeout
        self.silence_limit = silence_limit
        self.started = time.monotonic()
        self.probe_sent: float | None = None

    def restart(self) -> None:
        """IDLE was (re-)entered."""
        self.started = time.monotonic()
        self.probe_sent = None

    # What happened to a renewal, for a beat that learns from it (client/keepalive_learn.py);
    # a fixed-interval beat ignores it.
    def renewing(self) -> None:
        """The heartbeat sends a renewal DONE now."""

    def answered(self) -> None:
        """IDLE's tagged OK came back."""

    def died(self) -> None:
        """The connection was lost (or declared dead)."""

    def server_ended(self) -> None:
        """The server said BYE: whatever follows is not the NAT's doing."""

    def due(self) -> float:
        """The next moment this beat needs the heartbeat."""
        if self.probe_sent is not None:
            return self.probe_sent + self.response_timeout
        at = self.started + self.renew_every
        if self.silence_limit is not None:
            at = min(at, self.last_heard() + self.silence_limit)
        return at


class Heartbeat:
    def __init__(self, slack: float = 0.0) -> None:
        self.slack = slack
        self._beats: set[Beat] = set()
        self._changed = asyncio.Event()

    def add(self, beat: Beat) -> None:
        self._beats.add(beat)
        self._changed.set()

    def remove(self, beat: Beat) -> None:
        self._beats.discard(beat)

    def poke(self, beat: Beat) -> None:
        """A beat's timers moved earlier (a probe was sent)."""
        self._changed.set()

    def probe_all(self) -> None:
        """Probe every idling connection now (the network changed)."""
        for beat in list(self._beats):
            if beat.probe_sent is None:
                beat.started = -1e18  # due at once
        self._changed.set()

    def tick(self, now: float) -> None:
        for beat in list(self._beats):
            if beat.probe_sent is not None:
                if now >= beat.probe_sent + beat.response_timeout:
                    self._beats.discard(beat)
                    beat.abort("no answer to DONE")
                continue
            if beat.silence_limit is not None and now >= beat.last_heard() + beat.silence_limit:
                self._beats.discard(beat)
                beat.abort("server silent for too long")
            elif now + self.slack >= beat.started + beat.renew_every:
                beat.probe_sent = now
                beat.renew()

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            self.tick(now)
            now = time.monotonic()
            delay = min((b.due() for b in self._beats), default=now + 3600.0) - now
            self._changed.clear()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
                except TimeoutError:
                    pass
