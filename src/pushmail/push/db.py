"""The push database: devices, rules, alert cursors, the alert queue and the secrets
the push side shares (the account-id key, the VAPID key pair).

``PushDB`` is what the engine, the dispatcher, the web API and the CLI use; two
implementations stand behind it, and ``db_open.open_push_db`` is the only place
that constructs either:

- ``db_sqlite.SqlitePushDB``, a file of its own beside the SQLite mail store (one
  server process runs the push engine);
- ``db_postgres.PostgresPushDB``, tables of their own in the mail store's PostgreSQL
  database, for several nodes: any node may queue and send, work is claimed with a
  lease so that none sends an alert twice and an alert claimed by a node that died
  is sent by another once the lease runs out.

The queue is what makes alerts survive a restart: an alert is a row from the moment
it is made until a sender has handed it over or given up (so an alert may, rarely,
be sent twice when a sender dies between handing it over and recording that; never
lost).

Threading contract: an object is used by one thread at a time. The server runs all
calls on one thread of their own (``DbThread``), so the event loop never waits on
the database (design.md rule 8); the CLI calls directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import queue
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from pushmail.push.alert import Alert
from pushmail.push.rules import Rules

T = TypeVar("T")
DeviceKind = Literal["webpush", "webhook", "ntfy"]
KINDS: tuple[DeviceKind, ...] = ("webpush", "webhook", "ntfy")
DB_FILE = "push.sqlite3"  # in the data directory (SQLite)
VAPID_FILE = "vapid-private.pem"  # beside it (SQLite), mode 0600
ALL_DEVICES = 0  # device_id of a user's rules that apply to all their devices
MIN_SECRET, MAX_SECRET = 16, 200  # characters of a webhook secret or ntfy token
Cursor = tuple[int, int]  # (last UID looked at, MODSEQ then)


def new_secret() -> str:
    """A webhook secret made for the user (shown once by the API and the CLI)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Device:
    """One place alerts go: a browser's Web Push subscription (``endpoint`` plus its
    ``p256dh``/``auth`` keys), a webhook URL (with its HMAC ``secret``) or an ntfy
    topic URL (``secret``: an optional access token)."""

    id: int
    user_id: int
    kind: DeviceKind
    endpoint: str
    p256dh: str = ""
    auth: str = ""
    secret: str = ""
    label: str = ""
    created: float = 0.0

    def __repr__(self) -> str:  # keys and secrets never reach a log
        return f"Device(id={self.id}, user_id={self.user_id}, kind={self.kind!r})"

    def public(self) -> dict[str, object]:
        """What the API shows: no keys, no secret, the endpoint's origin only."""
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "endpoint_origin": _origin(self.endpoint),
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """An alert claimed for sending. ``claim`` identifies the claim (PostgreSQL:
    settling an alert whose lease another node has taken over changes nothing)."""

    id: int
    device: Device
    topic: str
    alert: Alert
    created: float
    deadline: float
    attempts: int
    claim: int = 0


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert the engine wants queued for one device (see ``PushDB.advance``)."""

    device_id: int
    topic: str
    alert: Alert


class PushDB(Protocol):
    """See module docstring. Every method commits durably before it returns."""

    def close(self) -> None: ...

    # -- shared secrets -------------------------------------------------------
    def secret(self) -> bytes:
        """32 random bytes made on first use, the same for every process and node:
        keys opaque account ids and web sessions."""
        ...

    def vapid_pem(self, make: Callable[[], bytes]) -> bytes:
        """The server's VAPID private key (PEM), made with ``make`` on first use and
        the same for every node afterwards (browsers bind subscriptions to it)."""
        ...

    # -- devices --------------------------------------------------------------
    def add_device(self, device: Device) -> Device:
        """Add a device (``device.id`` is ignored), or update the keys of the user's
        device with the same endpoint (a browser re-subscribing). Returns it stored.
        A webhook without a secret is refused: its alerts could be forged by anyone."""
        ...

    def devices(self, user_id: int | None = None) -> list[Device]:
        """The user's devices (everyone's with None), oldest first."""
        ...

    def device(self, device_id: int) -> Device | None: ...

    def remove_device(self, device_id: int) -> bool:
        """Remove a device with its rules and queued alerts; False if there was none."""
        ...

    # -- rules ----------------------------------------------------------------
    def rules(self, user_id: int, device_id: int = ALL_DEVICES) -> Rules | None:
        """The stored rules; None when the user (or device) has none of its own."""
        ...

    def set_rules(self, user_id: int, rules: Rules | None, device_id: int = ALL_DEVICES) -> None:
        """Store rules, or with None drop them (back to defaults / the user's rules)."""
        ...

    # -- cursors: the last message alerted per mailbox ------------------------
    def cursor(self, user_id: int, mailbox_id: int) -> Cursor | None:
        """(last UID, MODSEQ then) up to which new mail was looked at, or None."""
        ...

    def set_cursor(
        self, user_id: int, mailbox_id: int, last_uid: int, last_modseq: int
    ) -> None: ...

    def drop_cursor(self, user_id: int, mailbox_id: int) -> None: ...

    def advance(
        self,
        user_id: int,
        mailbox_id: int,
        seen: Cursor | None,
        new: Cursor,
        alerts: Sequence[NewAlert],
        now: float,
        hold: float,
        lifetime: float,
    ) -> bool:
        """In one transaction: move the mailbox's cursor from ``seen`` to ``new`` and
        queue ``alerts`` (as ``enqueue``), or, when the cursor is no longer ``seen``
        (another engine took that mail), change nothing and return False. This is
        what keeps engines on several nodes, each hearing every hint, from queueing
        one message's alert twice."""
        ...

    # -- the queue ------------------------------------------------------------
    def enqueue(
        self,
        device_id: int,
        topic: str,
        alert: Alert,
        now: float,
        hold: float,
        lifetime: float,
        rate_limited: bool = True,
    ) -> None:
        """Queue ``alert``, merging it into a not-yet-sent alert of the same device and
        topic (so a burst becomes one alert). A new alert waits ``hold`` seconds for
        others to merge and is given up ``lifetime`` seconds after it was made."""
        ...

    def claim_due(self, now: float, min_interval: float, limit: int) -> list[QueuedAlert]:
        """Take up to ``limit`` alerts that are due and whose device was not sent to in
        the last ``min_interval`` seconds (test alerts skip that limit); at most one
        per device, and none for a device with an alert in flight."""
        ...

    def next_due(self, min_interval: float) -> float | None:
        """The earliest time at which some queued alert may be sent, or None."""
        ...

    def sent(self, item: QueuedAlert, now: float) -> None:
        """The alert was handed over: drop it and start the device's rate limit."""
        ...

    def give_up(self, item: QueuedAlert) -> None: ...

    def retry_later(self, item: QueuedAlert, when: float) -> bool:
        """Put a failed alert back to be sent at ``when``; merged into a newer alert
        for the same device and topic if one was queued meanwhile. False (and the
        alert dropped) when ``when`` is past its deadline."""
        ...

    def queued(self, device_id: int | None = None) -> int:
        """How many alerts wait (for one device, or in all)."""
        ...


DEVICE_COLS = "id, user_id, kind, endpoint, p256dh, auth, secret, label, created"


def device_row(row: Sequence[Any]) -> Device:
    """A ``Device`` from the columns ``DEVICE_COLS`` (either backend)."""
    kind = str(row[2])
    if kind not in KINDS:
        raise ValueError(f"unknown device kind {kind!r}")
    endpoint, p256dh, auth, secret, label = (str(v) for v in row[3:8])
    return Device(
        int(row[0]), int(row[1]), kind, endpoint, p256dh, auth, secret, label, float(row[8])
    )


def dump_alert(alert: Alert) -> str:
    return json.dumps(alert.to_dict())


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else ""


_Job = tuple[
    Callable[[], Any], asyncio.AbstractEventLoop, Callable[[Any, BaseException | None], None]
]


class DbThread:
    """Runs PushDB calls on one dedicated thread, so the event loop never waits on
    the database (design.md rule 8) and the database object sees one user at a time.

    A trip is one queue put, the job and one ``call_soon_threadsafe``, as the store
    threads do (``threads/store_runner.py``): ``run_in_executor`` chained two futures with
    callbacks and locks on every trip (bench/push_db_trips.py has the figures)."""

    def __init__(self, open_db: Callable[[], PushDB]) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        opened: queue.SimpleQueue[PushDB | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, args=(open_db, opened), name="push-db", daemon=True
        )
        self._thread.start()
        first = opened.get()
        if isinstance(first, BaseException):
            self._thread.join()
            raise first
        self._db = first

    def _serve(
        self, open_db: Callable[[], PushDB], opened: queue.SimpleQueue[PushDB | BaseException]
    ) -> None:
        try:
            db = open_db()
        except BaseException as exc:  # handed to the constructor's caller
            opened.put(exc)
            return
        opened.put(db)
        while (job := self._jobs.get()) is not None:
            fn, loop, done = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the waiter, as an executor would
                error = exc
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(done, result, error)
        db.close()

    def run(self, fn: Callable[[PushDB], T]) -> asyncio.Future[T]:
        """Queue ``fn(db)``; its result (or exception) arrives in the returned future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        db = self._db
        self._jobs.put((lambda: fn(db), loop, functools.partial(_settle, future)))
        return future

    def close(self) -> None:
        """Finish the queued jobs, close the database, end the thread."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """On the loop: complete the future, unless its waiter has given up."""
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
