"""Alert channels behind one interface: a ``Sender`` posts one alert to one device
and says what happened, and the dispatcher alone decides about retries.

Every channel is an HTTP POST, so the outcome is read the same way from the status:
2xx delivered, 404/410 the subscription is gone (remove the device, RFC 8030 §7.3),
408/425/429/5xx and network failures temporary (retry with backoff, honouring
``Retry-After``), any other 4xx a permanent refusal of this alert (drop it). A new
channel (an APNs or FCM relay) is one more class with a ``send`` method.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp

from pushmail.push.alert import Alert
from pushmail.push.db import Device
from pushmail.push.destinations import is_refused_destination

log = logging.getLogger(__name__)

Status = Literal["ok", "retry", "gone", "failed"]
SIGNATURE_HEADER = "Pushmail-Signature"
TIMESTAMP_HEADER = "Pushmail-Timestamp"
WEBHOOK_TOLERANCE = 300.0  # seconds a receiver should accept a webhook's timestamp
MAX_ANSWER = 64 * 1024  # bytes of an endpoint's answer read (a hostile one may send more)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    status: Status
    detail: str = ""
    retry_after: float | None = None  # seconds, from the endpoint's Retry-After


class Sender(Protocol):
    """One alert channel; ``send`` never raises for the endpoint's faults."""

    async def send(self, device: Device, alert: Alert, topic: str) -> SendOutcome: ...


def classify(status: int, retry_after: str | None = None) -> SendOutcome:
    """The outcome of an HTTP answer (see module docstring)."""
    if 200 <= status < 300:
        return SendOutcome("ok", str(status))
    if status in (404, 410):
        return SendOutcome("gone", str(status))
    if status in (408, 425, 429) or status >= 500:
        return SendOutcome("retry", str(status), _seconds(retry_after))
    return SendOutcome("failed", str(status))


def _seconds(value: str | None) -> float | None:
    """Retry-After in its delta-seconds form (the HTTP-date form is ignored)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(min(int(value.strip()), 86400))


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> SendOutcome:
    """POST and classify; a timeout or network error is a ``retry``."""
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            await resp.content.read(MAX_ANSWER)  # the status is what counts; never all of it
            return classify(resp.status, resp.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        if is_refused_destination(e):  # the address will not become public by retrying soon
            return SendOutcome("failed", f"refused destination: {e}")
        return SendOutcome("retry", f"{type(e).__name__}: {e}")


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``"<timestamp>." + body`` under the
    device's secret. The timestamp is signed too, so a captured request cannot be
    replayed later with a fresh one."""
    mac = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float,
    tolerance: float = WEBHOOK_TOLERANCE,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is within
    ``tolerance`` seconds of ``now`` (replay protection). Constant-time compare."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign_webhook(secret, int(timestamp), body), signature)


class WebhookSender:
    """JSON POST of the padded alert to the device's URL, signed with its secret."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    async def send(self, device: Device, alert: Alert, topic: str) -> SendOutcome:
        if not device.secret:  # stored by an older version: anyone could forge its alerts
            return SendOutcome("failed", "webhook without a secret; add it again")
        body = alert.encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign_webhook(device.secret, stamp, body),
            "Pushmail-Topic": topic,
        }
        return await post(self._session, device.endpoint, body, headers, self._timeout)


class NtfySender:
    """POST to an ntfy topic URL (https://ntfy.sh/<topic> or a self-hosted one).
    ntfy shows the body as text, so it gets the one-line summary (counts only);
    ``secret``, when set, is sent as a bearer token for a protected topic."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    async def send(self, device: Device, alert: Alert, topic: str) -> SendOutcome:
        headers = {"Title": "New mail", "Tags": "email", "Content-Type": "text/plain"}
        if device.secret:
            headers["Authorization"] = f"Bearer {device.secret}"
        body = alert.summary().encode()
        return await post(self._session, device.endpoint, body, headers, self._timeout)
