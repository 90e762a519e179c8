"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm encryption (RFC 8291).

pywebpush encrypts (``WebPusher.encode``) and py-vapid signs the JWT; the POST itself
is ours, through the shared aiohttp session, so that timeouts and the status codes
are handled like every other channel's (``senders.classify``).

The server's VAPID key pair is made on first start and kept in the data directory
(``vapid-private.pem``, mode 0600). Browsers bind a subscription to the public key
(``applicationServerKey``), so losing the file means every browser must subscribe
again: back it up with the data directory.
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
from pushmail.push.db import Device
from pushmail.push.senders import SendOutcome, post

VAPID_FILE = "vapid-private.pem"
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
            fresh = Vapid()
            fresh.generate_keys()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(fresh.private_pem())
        return cls(Vapid.from_file(str(path)), subject)

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
