"""From "mailbox changed" hints to queued alerts.

The engine listens to every user's ``MailboxChanged(kind="new")`` hints. A hint only
says *where* to look (design.md "The store is the truth; events are hints"): the
engine asks the store which messages arrived since the last point it alerted for
that mailbox (a cursor of UID and MODSEQ kept in the push database), reads their
From headers when a rule needs them, evaluates each device's rules and queues one
alert per device. A lost hint delays alerts until the next hint for that mailbox; a
duplicated one finds nothing new.

Hints are handled in one task, all those heard so far at a time, after the bus has
already woken the IDLE sessions, and the store work is read-only, on the store's
reader thread: nothing here delays a delivery's 250 or an ``EXISTS``. A user with no
device costs indexed reads of the push database (one trip to its thread for all the
hints at hand) and no store work at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from functools import partial
from typing import Protocol, TypeVar

from pushmail.events.interfaces import MailboxChanged
from pushmail.push.alert import Alert, collapse_key, opaque_account, test_alert
from pushmail.push.db import Cursor, DbThread, Device, NewAlert, PushDB
from pushmail.push.dispatcher import DeliveryPolicy
from pushmail.push.rules import Rules
from pushmail.store.interfaces import NotFound, Store, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_SENDERS = 200  # From headers read per check; further messages count as unknown sender
# Looks at one mailbox when other engines keep moving its cursor (several nodes).
MAX_TRIES = 4
# Seconds before hints are handled again when the database could not be reached.
RETRY_DELAY = 5.0


class StoreAccess(Protocol):
    """How the engine reaches the store: ``threads.store_runner.StoreRunner`` in the
    server (the push layer does not import ``net``)."""

    def run(self, fn: Callable[[Store], T]) -> Awaitable[T]: ...

    def read(self, fn: Callable[[Store], T]) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class NewMail:
    """What the store says arrived in one mailbox since the cursor."""

    mailbox: str
    senders: tuple[str | None, ...]  # one per new message, None if unknown
    unseen: int
    total: int
    last_uid: int
    modseq: int


class AlertEngine:
    """See module docstring. ``on_queued`` is called after alerts were queued
    (the dispatcher's ``wake``)."""

    def __init__(
        self,
        store: StoreAccess,
        db: DbThread,
        secret: bytes,
        policy: DeliveryPolicy,
        on_queued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._db = db
        self._secret = secret
        self._policy = policy
        self._on_queued = on_queued
        self._clock = clock
        self._pending: dict[tuple[int, int], int] = {}  # (user, mailbox) -> hint modseq
        self._task: asyncio.Task[None] | None = None
        self.retry_delay = RETRY_DELAY
        self.retried = 0  # hints kept for later because the database was away

    def on_event(self, event: MailboxChanged) -> None:
        """Bus listener (on the loop): note the mailbox, start the worker if idle."""
        if event.kind != "new" or event.mailbox_id == 0:
            return
        key = (event.user_id, event.mailbox_id)
        self._pending[key] = min(self._pending.get(key, event.modseq), event.modseq)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        """Take every hint heard so far and sort out, in one trip to the database
        thread, the mailboxes of users with a device: in a delivery burst most hints
        are for users without one, and a trip per hint had cost more than the
        look-up itself. Hints that failed because the database could not be reached
        are kept and tried again after ``retry_delay``: the mail is stored, and its
        alert must not wait for the next hint of that mailbox (which may never come)."""
        while self._pending:
            pending, self._pending = self._pending, {}
            failed: dict[tuple[int, int], int] = {}
            try:
                watched = await self._db.run(partial(_cursors_if_watched, mailboxes=list(pending)))
            except Exception as exc:
                log.exception("push: looking up %d mailboxes failed", len(pending))
                if _unavailable(exc):
                    failed = pending
                watched = {}
            for (user_id, mailbox_id), cursor in watched.items():
                modseq = pending[(user_id, mailbox_id)]
                try:
                    await self._check_watched(user_id, mailbox_id, cursor, modseq)
                except Exception as exc:  # one bad mailbox must not stop alerts for the rest
                    log.exception(
                        "push: checking mailbox %d of user %d failed", mailbox_id, user_id
                    )
                    if _unavailable(exc):
                        failed[(user_id, mailbox_id)] = modseq
            if failed:
                self.retried += len(failed)
                await asyncio.sleep(self.retry_delay)
                for key, modseq in failed.items():
                    self._pending[key] = min(self._pending.get(key, modseq), modseq)

    async def idle(self) -> None:
        """Wait until every hint heard so far has been handled (for tests and
        shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def account(self, user_id: int) -> str:
        return opaque_account(self._secret, user_id)

    async def check(self, user_id: int, mailbox_id: int, hint_modseq: int) -> int:
        """Look for new mail in one mailbox and queue alerts; the number queued."""
        watched = await self._db.run(lambda db: _cursors_if_watched(db, [(user_id, mailbox_id)]))
        if (user_id, mailbox_id) not in watched:
            return 0
        return await self._check_watched(
            user_id, mailbox_id, watched[(user_id, mailbox_id)], hint_modseq
        )

    async def _check_watched(
        self, user_id: int, mailbox_id: int, cursor: Cursor | None, hint_modseq: int
    ) -> int:
        """``check`` for a mailbox whose user has a device, from its cursor. When
        another engine (another node's) moved the cursor meanwhile, it has queued
        the alerts for that mail: look again from where it left off."""
        for _ in range(MAX_TRIES):
            # Read-only: the reader thread, so that alerts never queue behind deliveries.
            found = await self._store.read(
                partial(new_mail, user_id=user_id, mailbox_id=mailbox_id, cursor=cursor,
                        hint_modseq=hint_modseq)
            )  # fmt: skip
            if found is None:
                return 0
            enqueue = partial(self._enqueue, user_id=user_id, mailbox_id=mailbox_id,
                              seen=cursor, found=found, now=self._clock())  # fmt: skip
            queued = await self._db.run(enqueue)
            if queued is not None:
                if queued:
                    self._on_queued()
                return queued
            cursor = await self._db.run(lambda db: db.cursor(user_id, mailbox_id))
        log.warning("push: mailbox %d of user %d kept changing; checked later", mailbox_id, user_id)
        return 0

    def _enqueue(
        self,
        db: PushDB,
        user_id: int,
        mailbox_id: int,
        seen: Cursor | None,
        found: NewMail,
        now: float,
    ) -> int | None:
        """Evaluate every device's rules and queue its alert, moving the cursor from
        ``seen`` (database thread). None when the cursor had moved: nothing queued."""
        alerts: list[NewAlert] = []
        if found.senders:
            user_rules = db.rules(user_id) or Rules()
            when = datetime.fromtimestamp(now, UTC)
            account = self.account(user_id)
            topic = collapse_key(account, found.mailbox)
            for device in db.devices(user_id):
                count = matching(device, db, user_rules, found, when)
                if count:
                    alert = Alert(account, found.mailbox, count, found.unseen, found.total)
                    alerts.append(NewAlert(device.id, topic, alert))
        p = self._policy
        new = (found.last_uid, found.modseq)
        if not db.advance(user_id, mailbox_id, seen, new, alerts, now, p.hold, p.lifetime):
            return None
        return len(alerts)

    async def send_test(self, device: Device) -> None:
        """Queue a test alert for one device, past its rules and rate limit."""
        alert, topic = test_alert(self._secret, device.user_id)
        now = self._clock()
        lifetime = self._policy.lifetime
        await self._db.run(
            lambda db: db.enqueue(device.id, topic, alert, now, 0.0, lifetime, rate_limited=False)
        )
        self._on_queued()


def _unavailable(exc: BaseException) -> bool:
    """The store or the push database could not be reached (so trying again later
    may work), as opposed to a failure that would repeat."""
    return isinstance(exc, StoreUnavailable)


def _cursors_if_watched(
    db: PushDB, mailboxes: list[tuple[int, int]]
) -> dict[tuple[int, int], Cursor | None]:
    """(Database thread.) Of these (user, mailbox) pairs, those whose user has a
    device to alert, each with its cursor. Most users of a server have none: their
    hints cost indexed reads here and no store work (a delivery burst to 10,000 such
    users used to read every new message's From header). Their cursors are dropped,
    so that a device registered later hears of mail from then on, not of the backlog
    since the last device left."""
    with_devices = {u: bool(db.devices(u)) for u in {u for u, _ in mailboxes}}
    watched: dict[tuple[int, int], Cursor | None] = {}
    for user_id, mailbox_id in mailboxes:
        cursor = db.cursor(user_id, mailbox_id)
        if with_devices[user_id]:
            watched[(user_id, mailbox_id)] = cursor
        elif cursor is not None:
            db.drop_cursor(user_id, mailbox_id)
    return watched


def matching(device: Device, db: PushDB, user_rules: Rules, found: NewMail, when: datetime) -> int:
    """How many of the new messages this device is to be told about: the user's
    rules and the device's own (if any) must both allow each."""
    own = db.rules(device.user_id, device.id)
    rule_sets = (user_rules,) if own is None else (user_rules, own)
    if not all(r.allows_now(when) for r in rule_sets):
        return 0
    return sum(
        1 for s in found.senders if all(r.allows_message(found.mailbox, s) for r in rule_sets)
    )


def new_mail(
    store: Store, user_id: int, mailbox_id: int, cursor: Cursor | None, hint_modseq: int
) -> NewMail | None:
    """(Store thread.) The unseen messages above the cursor. Without a cursor (the
    first hint for this mailbox) those from the hint's MODSEQ on."""
    box = store.get_mailbox_by_id(mailbox_id)
    if box is None or box.user_id != user_id:
        return None
    if cursor is not None:
        last_uid, since = cursor
    else:
        last_uid, since = -1, max(hint_modseq - 1, 0)
    changes = store.changes_since(box.id, since)
    if last_uid < 0:
        fresh = [m.uid for m in changes.changed if m.modseq >= hint_modseq]
        last_uid = min(fresh) - 1 if fresh else changes.uidnext - 1
    new = [m for m in changes.changed if m.uid > last_uid and "\\Seen" not in m.flags]
    senders = tuple(
        _sender(store, box.id, m.uid) if i < MAX_SENDERS else None for i, m in enumerate(new)
    )
    counts = store.counts(box.id)
    top = max((m.uid for m in changes.changed), default=last_uid)
    return NewMail(
        box.name, senders, counts.unseen, counts.messages, max(top, last_uid), changes.highestmodseq
    )


def _sender(store: Store, mailbox_id: int, uid: int) -> str | None:
    """The first From address of a message, lower-cased; None if it has none."""
    try:
        raw = store.get_raw(mailbox_id, uid)
    except NotFound:  # expunged meanwhile
        return None
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    headers = BytesHeaderParser().parsebytes(head)
    for _name, address in getaddresses([str(v) for v in headers.get_all("From", [])]):
        if "@" in address:
            return address.lower()
    return None
