"""What the three ingress listeners accept, as aiosmtpd handler hooks.

* **MX** (``mode="mx"``): mail for local users only. An unknown user in a local domain
  is ``550 5.1.1``; any other domain is ``550 5.7.1 relaying denied``, whoever asks:
  this server is never an open relay. No AUTH.
* **Submission** (``mode="submission"``): STARTTLS, then AUTH (PLAIN or LOGIN), then
  MAIL FROM the authenticated address only. Local recipients are delivered; remote
  ones are refused with ``550 5.7.1 no outbound relay configured`` because pushmail has
  no outbound queue yet.
* **LMTP** (``mode="lmtp"``): like MX (an MTA in front decides what to accept), with
  one reply per recipient after DATA.

A ``250`` after DATA is sent only when the message is durable for that recipient.
Store failures become ``451 4.3.0`` (try again later), never a dropped connection.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import logging
import secrets
import time
from base64 import b64decode
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from pushmail.auth.guard import LoginGuard
from pushmail.auth.names import qualify
from pushmail.auth.passwords import hash_password, verify_password
from pushmail.delivery import RecipientResult
from pushmail.metrics.series import DELIVERY_TIMES, RECIPIENTS
from pushmail.seclog import report
from pushmail.smtp.data import BARE_EOL, DataError
from pushmail.smtp.delivery_port import LocalDelivery
from pushmail.smtp.protocol import PushmailSMTP, close_soon, is_lmtp, peer_ip, uses_tls
from pushmail.smtp.trace import TraceInfo, trace_headers, with_protocol
from pushmail.store.interfaces import StoreUnavailable

__all__ = ["IngressHandler", "IngressPolicy", "Mode", "SubmissionHandler"]

log = logging.getLogger(__name__)

Mode = Literal["mx", "submission", "lmtp"]

TEMPFAIL = "451 4.3.0 temporary local problem, try again later"
OVER_QUOTA = "452 4.2.2 mailbox full, try again later"  # RFC 3463: may succeed later


@dataclass(frozen=True, slots=True)
class IngressPolicy:
    """The per-listener rules (from ``Config``)."""

    mode: Mode
    hostname: str
    max_recipients: int = 100
    max_login_failures: int = 3
    login_failure_delay: float = 1.0  # seconds, doubled per failure
    default_domain: str | None = None  # bare names in AUTH and LMTP RCPT (auth/names.py)
    postmaster: str | None = None  # where postmaster@<local domain> goes (RFC 5321 §4.5.1)


class IngressHandler:
    """Hooks for MX and LMTP; the base of the submission handler.

    aiosmtpd discovers hooks by name (``handle_*``, ``auth_*``), so nothing else on
    this class may start with those prefixes.
    """

    def __init__(self, policy: IngressPolicy, delivery: LocalDelivery) -> None:
        self._policy = policy
        self._delivery = delivery

    # -- hooks ---------------------------------------------------------------------
    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise AUTH only where logins exist (submission, after STARTTLS)."""
        session.host_name = hostname
        if self._policy.mode == "submission":
            return responses
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refusal = self._check_sender(session, address)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self._policy.max_recipients:
            return "452 4.5.3 too many recipients"
        if is_lmtp(server):  # an MTA in front may hand on bare names, as to Dovecot
            address = qualify(address, self._policy.default_domain)
        try:
            target, refusal, relay = await self._recipient(server, address)
            # SMTP has one reply after DATA for all recipients: one over quota is
            # refused here (with the SIZE the client declared, if any). LMTP
            # answers each recipient after DATA instead, without a store trip here.
            if (
                target is not None
                and not is_lmtp(server)
                and not await self._delivery.has_room(target, _declared_size(envelope))
            ):
                return OVER_QUOTA
        except StoreUnavailable as exc:
            log.warning("recipient %r not checked: %s", address, exc)
            return TEMPFAIL
        except Exception:
            log.exception("store error while checking recipient %r", address)
            return TEMPFAIL
        if target is None:
            report("relay-denied" if relay else "rcpt-refused", self._policy.mode,
                   peer_ip(server) or "local", _user(server), rcpt=address)  # fmt: skip
            return refusal
        envelope.rcpt_tos.append(target)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def _recipient(self, server: SMTP, address: str) -> tuple[str | None, str, bool]:
        """The address to deliver to; or None, the refusal, and whether it is a relay
        attempt (a remote domain)."""
        local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
        if at and await self._delivery.resolve(address, remembered=is_lmtp(server)):
            return address, "", False
        postmaster = local.lower() == "postmaster"
        if postmaster and (not at or await self._delivery.is_local_domain(domain)):
            return await self._postmaster(address)
        if not at or not domain:
            refusal = "550 5.1.3 recipient must be a full address (user@domain)"
            return None, refusal, False
        if await self._delivery.is_local_domain(domain):
            return None, f"550 5.1.1 <{address}>: no such user here", False
        if self._policy.mode == "submission":
            return None, "550 5.7.1 no outbound relay configured", True
        return None, "550 5.7.1 relaying denied", True

    async def _postmaster(self, address: str) -> tuple[str | None, str, bool]:
        """RFC 5321 §4.5.1: every domain must take mail for its postmaster; it goes
        to the configured ``postmaster`` address."""
        target = self._policy.postmaster
        if target is None:
            return None, f"550 5.1.1 <{address}>: no postmaster configured here", False
        if await self._delivery.resolve(target) is None:
            log.error("postmaster = %r is not a local user; mail for %s refused", target, address)
            return None, "451 4.3.0 postmaster mailbox unavailable", False
        return target, "", False

    async def handle_exception(self, error: Exception) -> str:
        """A bug of ours, not the peer's: log it, keep the details to ourselves."""
        log.error("SMTP session error", exc_info=error)
        return "451 4.3.0 internal error"

    # -- DATA (called by protocol._data_command) -----------------------------------
    def data_refused(self, server: SMTP, envelope: Envelope, error: DataError) -> list[str]:
        if error is BARE_EOL:  # a smuggling attempt, or a badly broken client
            report("smtp-smuggling", self._policy.mode, peer_ip(server) or "local",
                   _user(server), sender=envelope.mail_from or "")  # fmt: skip
        count = len(envelope.rcpt_tos) if is_lmtp(server) else 1
        return [error.reply()] * count

    async def message_received(
        self, server: SMTP, session: Session, envelope: Envelope, content: bytes
    ) -> list[str]:
        """Prepend the trace headers, deliver durably, and turn the per-recipient
        results into the reply (SMTP) or replies (LMTP)."""
        start = time.perf_counter()
        recipients = tuple(envelope.rcpt_tos)
        info = self._trace_info(server, session, envelope, recipients)
        raw = trace_headers(info) + content
        try:
            results: list[RecipientResult] | None = await self._delivery.deliver(recipients, raw)
        except StoreUnavailable as exc:  # the database is down: 451, no traceback
            log.warning("delivery %s deferred: %s", info.queue_id, exc)
            results = None
        except Exception:
            log.exception("delivery %s failed", info.queue_id)
            results = None
        _count(self._policy.mode, results, len(recipients), time.perf_counter() - start)
        log.info(
            "delivery %s from <%s> to %s: %s",
            info.queue_id,
            info.sender,
            ", ".join(recipients),
            [r.code for r in results] if results else "failed",
        )
        return self._replies(server, recipients, results, info.queue_id)

    # -- helpers -------------------------------------------------------------------
    def _check_sender(self, session: Session, address: str) -> str | None:
        """None when ``address`` may be the envelope sender. MX and LMTP take any
        sender, including the null one (``<>``, for bounces)."""
        return None

    def _trace_info(
        self, server: SMTP, session: Session, envelope: Envelope, recipients: tuple[str, ...]
    ) -> TraceInfo:
        sender = envelope.mail_from or ""
        return TraceInfo(
            helo=session.host_name or "unknown",
            peer_ip=peer_ip(server),
            by_host=self._policy.hostname,
            protocol=with_protocol(
                is_lmtp(server),
                session.extended_smtp,
                uses_tls(server),
                bool(session.authenticated),
            ),
            queue_id=secrets.token_hex(6),
            sender="" if sender == "<>" else sender,
            recipients=recipients,
            when=datetime.now(UTC).astimezone(),
        )

    def _replies(
        self,
        server: SMTP,
        recipients: Sequence[str],
        results: Sequence[RecipientResult] | None,
        queue_id: str,
    ) -> list[str]:
        if results is None or len(results) != len(recipients):
            if results is not None:
                log.error(
                    "delivery %s: %d results for %d recipients",
                    queue_id,
                    len(results),
                    len(recipients),
                )
            return [TEMPFAIL] * (len(recipients) if is_lmtp(server) else 1)
        if is_lmtp(server):
            return [r.reply() for r in results]
        return [_smtp_reply(results, queue_id)]


def _count(
    service: str, results: Sequence[RecipientResult] | None, recipients: int, seconds: float
) -> None:
    """Metrics of one received message: its recipients by outcome and, when it was
    stored for any, the time to the durable reply."""
    if results is None:
        RECIPIENTS[service, "deferred"].inc(recipients)
        return
    stored = sum(1 for r in results if r.ok)
    refused = sum(1 for r in results if r.code >= 500)
    deferred = len(results) - stored - refused
    for outcome, n in (("stored", stored), ("refused", refused), ("deferred", deferred)):
        if n:
            RECIPIENTS[service, outcome].inc(n)
    if stored:
        DELIVERY_TIMES[service].observe(seconds)


def _declared_size(envelope: Envelope) -> int:
    """The SIZE= of MAIL FROM (RFC 1870), or 0."""
    for option in envelope.mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def _smtp_reply(results: Sequence[RecipientResult], queue_id: str) -> str:
    """SMTP has one reply for all recipients. Success if any copy was stored (a
    failure for some would need a bounce, which needs an outbound queue we do not
    have; it is logged); otherwise the first failure, temporary ones first so the
    sender retries."""
    if any(r.code < 300 for r in results):
        for r in results:
            if r.code >= 300:
                log.warning("delivery %s: lost for %s: %s", queue_id, r.address, r.reply())
        return f"250 2.0.0 OK queued as {queue_id}"
    temporary = [r for r in results if 400 <= r.code < 500]
    return (temporary or list(results))[0].reply()


def _user(server: SMTP) -> str | None:
    """The logged-in submission user, for the security log."""
    data = server.session.auth_data if server.session is not None else None
    return data if isinstance(data, str) else None


@functools.cache
def _decoy_hash() -> str:
    """A real hash to verify against when the user does not exist, so that a
    failed login takes as long for an unknown user as for a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


class SubmissionHandler(IngressHandler):
    """Submission: adds AUTH PLAIN/LOGIN checked against the store (behind the
    password-guessing limits of ``auth/guard.py``), and holds the sender to the
    authenticated address."""

    def __init__(
        self, policy: IngressPolicy, delivery: LocalDelivery, guard: LoginGuard | None = None
    ) -> None:
        super().__init__(policy, delivery)
        self._guard = guard or LoginGuard()

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 4616: ``[authzid] NUL authcid NUL passwd``, initial response or not."""
        blob = await self._client_response(server, args, b"")
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authzid, authcid, password = parts
        if authzid and authzid != authcid:  # acting as another user is not offered
            return await self._refuse(server)
        return await self._check(server, authcid, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """The de-facto LOGIN mechanism: user name, then password, each base64."""
        login = await self._client_response(server, args, b"User Name\x00")
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(b"Password\x00")
        if password is MISSING or not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    def _check_sender(self, session: Session, address: str) -> str | None:
        user = session.auth_data
        if not isinstance(user, str) or address.lower() != user:
            return "553 5.7.1 sender address must be your own address"
        return None

    async def _client_response(
        self, server: SMTP, args: list[str], challenge: bytes
    ) -> bytes | None:
        """The initial response if sent with AUTH, else ask for it; None when the
        client aborted or sent bad base64 (the reply has been sent)."""
        if len(args) == 1:
            blob = await server.challenge_auth(challenge)
            return blob if isinstance(blob, bytes) else None
        try:
            return b64decode(args[1].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def _check(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        try:
            address = qualify(login.decode("utf-8"), self._policy.default_domain)
            secret = password.decode("utf-8")
        except UnicodeDecodeError:
            return await self._refuse(server)
        client, guard = peer_ip(server) or "local", self._guard
        if guard.admit("submission", client, address) is not None:
            return await self._limited(server)
        try:
            user = await self._delivery.get_user(address)
        except Exception:
            log.exception("store error during AUTH")
            guard.settle("submission", client, address, None)
            await server.push("454 4.7.0 temporary authentication failure")
            return AuthResult(success=False, handled=True)
        stored = user.password_hash if user is not None else None
        ok = await guard.check("submission", client, address, None, _verify, stored, secret)
        guard.settle("submission", client, address, ok if ok is None else ok and user is not None)
        if ok is None:
            return await self._limited(server)
        if ok and user is not None:
            return AuthResult(success=True, auth_data=user.address)
        return await self._refuse(server)

    async def _limited(self, server: SMTP) -> AuthResult:
        """Refused unchecked by a guessing limit: at once, but it counts as a failure."""
        failures = 1
        if isinstance(server, PushmailSMTP):
            server.failed_logins += 1
            failures = server.failed_logins
        if failures >= self._policy.max_login_failures:
            await server.push("421 4.7.0 too many failed logins, closing connection")
            close_soon(server)
        else:
            await server.push("454 4.7.0 too many login attempts, try again later")
        return AuthResult(success=False, handled=True)

    async def _refuse(self, server: SMTP) -> AuthResult:
        """A failed login: wait (longer each time), and hang up after too many."""
        failures = 1
        if isinstance(server, PushmailSMTP):
            server.failed_logins += 1
            failures = server.failed_logins
        await asyncio.sleep(self._policy.login_failure_delay * 2 ** (failures - 1))
        if failures >= self._policy.max_login_failures:
            await server.push("421 4.7.0 too many failed logins, closing connection")
            close_soon(server)
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)


def _verify(stored: str | None, secret: str) -> bool:
    """Runs in a worker thread: the CPU-heavy part of a login."""
    return verify_password(stored if stored is not None else _decoy_hash(), secret) and (
        stored is not None
    )
