"""Delivery: parse once, store durably, then publish (design.md "The store is
the truth; events are hints").

The order matters. The message is on disk in every recipient's INBOX (one
transaction, one fsync) before any event is published and before the SMTP/LMTP layer
says 250, so a crash can lose a notification but never an accepted message, and a
session that hears an event always finds the message in the store.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pushmail.events.interfaces import MailboxChanged, Publisher
from pushmail.events.local import publish_all
from pushmail.metrics.series import STORE_ERRORS
from pushmail.store.interfaces import MessageCache, NewMessage, Store, User

log = logging.getLogger(__name__)

_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """The outcome for one recipient, as an SMTP reply (one per RCPT in LMTP)."""

    address: str
    code: int  # 250, 550 (no such user), 451/452 (temporary; 4.2.2 over quota), 552 (too big)
    enhanced: str  # RFC 3463 status, e.g. "2.1.5"
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def reply(self) -> str:
        return f"{self.code} {self.enhanced} <{self.address}> {self.text}"


def normalize_crlf(raw: bytes) -> bytes:
    """Turn bare LF line ends into CRLF, as IMAP requires (a file given to
    ``pushmail deliver`` usually has LF ends). CRLF and lone CR are left alone."""
    if b"\n" not in raw or raw.count(b"\n") == raw.count(b"\r\n"):
        return raw
    return _BARE_LF.sub(b"\r\n", raw)


def _bare(address: str) -> str:
    """The address without surrounding blanks or angle brackets."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address


class Deliverer:
    """Stores incoming mail into users' INBOXes. Synchronous: call it on the store
    thread (it does disk I/O and, through ``make_cache``, parses the message)."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        make_cache: Callable[[bytes], MessageCache] | None = None,
        max_size: int | None = None,
    ) -> None:
        if make_cache is None:
            from pushmail.imap.structure import build_cache  # written alongside; lazy

            make_cache = build_cache
        self._store = store
        self._publisher = publisher
        self._make_cache = make_cache
        self._max_size = max_size

    def resolve(self, address: str) -> User | None:
        """The user a RCPT TO address names: case-insensitive, and ``user+tag@dom``
        is ``user@dom`` (unless a user is literally called ``user+tag@dom``)."""
        address = _bare(address).lower()
        user = self._store.get_user(address)
        if user is not None:
            return user
        local, at, domain = address.rpartition("@")
        if not at or "+" not in local:
            return None
        return self._store.get_user(local.split("+", 1)[0] + "@" + domain)

    def has_room(self, address: str, size: int) -> bool:
        """Whether a message of ``size`` octets (0: unknown) fits the quota of the
        user ``address`` names now. SMTP asks at RCPT, where a refusal costs the
        sender nothing; the delivery checks again in its transaction."""
        user = self.resolve(address)
        if user is None:
            return True
        quota, used = self._store.get_quota(user.id)
        if quota.storage is not None and used.storage + size > quota.storage:
            return False
        return quota.messages is None or used.messages < quota.messages

    def deliver(self, recipients: Sequence[str], raw: bytes) -> list[RecipientResult]:
        """Deliver ``raw`` (stored byte for byte) to every known recipient; one result
        per recipient, in order. A user named twice (``a@x`` and ``a+t@x``) gets one copy."""
        return self.deliver_many([(recipients, raw)])[0]

    def deliver_many(
        self, items: Sequence[tuple[Sequence[str], bytes]]
    ) -> list[list[RecipientResult]]:
        """Deliver several messages in ONE store transaction (group commit: one fsync
        for the lot, which is what makes many concurrent LMTP sessions fast). Returns
        each message's per-recipient results, in order. A message that is too big or
        cannot be parsed fails alone; a store failure fails every message that had
        somewhere to go (451: nothing of the batch was stored, the senders retry)."""
        plans = [self._plan(rcpts, raw) for rcpts, raw in items]
        stored = [p for p in plans if p.message is not None]
        if stored and not self._store_plans(stored):
            for plan in stored:
                plan.refusal = (451, "4.3.0", "local error, try again later")
        return [plan.results() for plan in plans]

    def _plan(self, recipients: Sequence[str], raw: bytes) -> _Plan:
        """Resolve one message's recipients and parse it (the parse happens here, on
        the store thread, never on the event loop)."""
        plan = _Plan(recipients)
        if self._max_size is not None and len(raw) > self._max_size:
            plan.refusal = (552, "5.3.4", "message too big")
            return plan
        for rcpt in recipients:
            user = self.resolve(rcpt)
            plan.found.append(user)
            if user is not None and user.id not in plan.targets:
                box = self._store.get_mailbox(user.id, "INBOX")
                if box is not None:
                    plan.targets[user.id] = box.id
        if plan.targets:
            try:
                plan.message = NewMessage(raw, self._make_cache(raw))
            except Exception:
                log.exception("parsing a %d-byte message failed", len(raw))
                plan.refusal = (451, "4.3.0", "local error, try again later")
        return plan

    def _store_plans(self, plans: Sequence[_Plan]) -> bool:
        """Store every planned copy in one transaction, then publish; False when
        nothing was stored (the senders must retry)."""
        targets: list[tuple[int, NewMessage]] = []
        owners: dict[int, int] = {}  # INBOX id -> user id
        placed: list[tuple[_Plan, int]] = []  # (plan, user id) of each target
        for plan in plans:
            assert plan.message is not None
            for user_id, box in plan.targets.items():
                targets.append((box, plan.message))
                owners[box] = user_id
                placed.append((plan, user_id))
        try:
            # A recipient over quota is left out, the others stored: LMTP answers
            # that one 452 4.2.2 and the MTA retries it alone (RFC 2033 §4.2).
            outcome = self._store.deliver_within_quota(targets)
        except Exception:
            log.exception("delivery of %d message(s) failed", len(plans))
            STORE_ERRORS.labels("delivery").inc()
            return False
        appended = [a for a in outcome if a is not None]
        for (plan, user_id), done in zip(placed, outcome, strict=True):
            if done is None:
                assert plan.message is not None
                # A message larger than the whole quota would never fit: refused for
                # good (552 5.2.2, as Dovecot), not deferred.
                limit = self._store.get_quota(user_id)[0].storage
                never = limit is not None and len(plan.message.raw) > limit
                (plan.too_big if never else plan.over_quota).add(user_id)
        now = time.time()  # the commit, for the wake-up latency (metrics/wakeup.py)
        events = [
            MailboxChanged(owners[a.mailbox_id], a.mailbox_id, a.modseq, "new", now)
            for a in appended
        ]
        try:
            publish_all(self._publisher, events)
        except Exception:  # the mail is safe; sessions will find it on re-check
            log.exception("publishing %d delivery event(s) failed", len(events))
        return True


@dataclass(slots=True)
class _Plan:
    """One message of a batch on its way through ``deliver_many`` (mutable, private)."""

    recipients: Sequence[str]
    found: list[User | None] = field(default_factory=list)
    targets: dict[int, int] = field(default_factory=dict)  # user id -> INBOX id
    message: NewMessage | None = None
    refusal: tuple[int, str, str] | None = None  # one reply for every recipient
    over_quota: set[int] = field(default_factory=set)  # user ids not stored: quota
    too_big: set[int] = field(default_factory=set)  # ... and larger than the quota

    def results(self) -> list[RecipientResult]:
        if self.refusal is not None:
            code, enhanced, text = self.refusal
            return [_result(r, code, enhanced, text) for r in self.recipients]
        return [
            _outcome(rcpt, user, self.targets, self.over_quota, self.too_big)
            for rcpt, user in zip(self.recipients, self.found, strict=True)
        ]


def _result(address: str, code: int, enhanced: str, text: str) -> RecipientResult:
    return RecipientResult(_bare(address), code, enhanced, text)


def _outcome(
    rcpt: str,
    user: User | None,
    targets: dict[int, int],
    over_quota: set[int],
    too_big: set[int],
) -> RecipientResult:
    if user is None:
        return _result(rcpt, 550, "5.1.1", "no such user")
    if user.id not in targets:
        return _result(rcpt, 550, "5.2.1", "mailbox unavailable")
    if user.id in over_quota:  # RFC 3463 4.2.2: mailbox full, may succeed later
        return _result(rcpt, 452, "4.2.2", "mailbox full, try again later")
    if user.id in too_big:
        return _result(rcpt, 552, "5.2.2", "message larger than the mailbox quota")
    return _result(rcpt, 250, "2.1.5", "delivered")
