"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm encryption (RFC 8291).

pywebpush encrypts (``WebPusher.encode``) and py-vapid signs the JWT; the POST itself
is ours, through the shared aiohttp session, so that timeouts and the status codes
are handled like every other channel's (``senders.classify``).

The server's VAPID key pair is made on first start and kept by the push database
(``PushDB.vapid_pem``): with SQLite the file ``vapid-private.pem`` (mode 0600) in the
data directory, with PostgreSQL a row every node reads. Browsers bind a subscription
to the public key (``applicationServerKey``), so losing it means every browser must
subscribe again: back it up with the data directory (or the database).
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException  # type: ignore[import-untyped]

from pushmail.push.alert import Alert
from pushmail.push.db import VAPID_FILE, Device
from pushmail.push.senders import SendOutcome, post

JWT_LIFETIME = 12 * 3600  # seconds; RFC 8292 §2 allows at most 24 h


class VapidKey:
    """The server's VAPID identity: signs the JWT that tells a push service who
    sends (``subject``, a mailto: or https: URI the push service may contact)."""

    def __init__(self, vapid: Any, subject: str) -> None:
        self._vapid = vapid
        self.subject = subject

    @classmethod
    def load_or_create(cls, data_dir: Path, subject: str) -> VapidKey:
        """Read ``<data_dir>/vapid-private.pem``, making it (0600) if missing."""
        path = data_dir / VAPID_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(new_vapid_pem())
        return cls.from_pem(path.read_bytes(), subject)

    @classmethod
    def from_pem(cls, pem: bytes, subject: str) -> VapidKey:
        """The key of a private PEM (as ``PushDB.vapid_pem`` keeps it)."""
        return cls(Vapid.from_pem(pem), subject)

    @property
    def application_server_key(self) -> str:
        """The public key as browsers want it: the uncompressed P-256 point,
        URL-safe base64 without padding (``PushManager.subscribe``)."""
        raw = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def headers(self, endpoint: str) -> dict[str, str]:
        """``Authorization: vapid t=<JWT>, k=<key>`` for the endpoint's origin."""
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + JWT_LIFETIME,
            "sub": self.subject,
        }
        return dict(self._vapid.sign(claims))


def new_vapid_pem() -> bytes:
    """A fresh P-256 private key, PEM (what ``PushDB.vapid_pem`` keeps)."""
    fresh = Vapid()
    fresh.generate_keys()
    return bytes(fresh.private_pem())


class WebPushSender:
    """Encrypts the padded alert for the browser's keys and POSTs it to the push
    service with a short ``TTL`` and the collapse key as ``Topic`` (RFC 8030 §5.4:
    the push service keeps only the newest undelivered alert per topic)."""

    def __init__(
        self, session: aiohttp.ClientSession, key: VapidKey, ttl: int, timeout: float
    ) -> None:
        self._session = session
        self._key = key
        self._ttl = ttl
        self._timeout = timeout

    async def send(self, device: Device, alert: Alert, topic: str) -> SendOutcome:
        subscription = {
            "endpoint": device.endpoint,
            "keys": {"p256dh": device.p256dh, "auth": device.auth},
        }
        try:
            encrypted = WebPusher(subscription).encode(alert.encode(), "aes128gcm")
        except (WebPushException, ValueError, TypeError) as e:  # unusable keys: never works
            return SendOutcome("failed", f"cannot encrypt for this subscription: {e}")
        headers = {
            **self._key.headers(device.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._ttl),
            "Topic": topic,
            "Urgency": "normal",
        }
        return await post(self._session, device.endpoint, encrypted["body"], headers, self._timeout)
