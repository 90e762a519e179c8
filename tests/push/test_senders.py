"""Each channel against a real local receiver: Web Push is decrypted and its VAPID JWT
verified; the webhook's signature is checked; ntfy gets counts only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from push_endpoint import PushEndpoint

from pushmail.push.alert import ALERT_FIELDS, PAD_BLOCK, Alert, collapse_key
from pushmail.push.db import Device
from pushmail.push.senders import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    NtfySender,
    WebhookSender,
    classify,
    verify_webhook,
)
from pushmail.push.webpush import VAPID_FILE, VapidKey, WebPushSender

ALERT = Alert("acct123", "INBOX", 3, 5, 12)


def webpush_device(ep: PushEndpoint) -> Device:
    keys = ep.keys
    return Device(1, 7, "webpush", ep.url(), keys["p256dh"], keys["auth"])


async def _with_endpoint(fn, ep: PushEndpoint | None = None):  # type: ignore[no-untyped-def]
    ep = ep or PushEndpoint()
    await ep.start()
    try:
        async with aiohttp.ClientSession() as session:
            return ep, await fn(ep, session)
    finally:
        await ep.stop()


def test_webpush_is_encrypted_signed_and_content_free(tmp_path: Path) -> None:
    key = VapidKey.load_or_create(tmp_path, "mailto:admin@example.org")

    async def send(ep: PushEndpoint, session: aiohttp.ClientSession) -> object:
        sender = WebPushSender(session, key, ttl=120, timeout=5)
        return await sender.send(webpush_device(ep), ALERT, collapse_key("acct123", "INBOX"))

    ep, outcome = asyncio.run(_with_endpoint(send))
    assert ep.errors == []
    assert outcome.status == "ok"  # type: ignore[attr-defined]
    [got] = ep.received
    assert got.payload is not None
    length = got.payload.pop("_length")
    assert set(got.payload) == ALERT_FIELDS  # exactly the content-free fields
    assert got.payload["account"] == "acct123" and got.payload["mailbox"] == "INBOX"
    assert (got.payload["new"], got.payload["unseen"], got.payload["total"]) == (3, 5, 12)
    assert got.payload["pad"].strip() == "" and length % PAD_BLOCK == 0
    assert got.claims is not None and got.claims["sub"] == "mailto:admin@example.org"
    assert got.headers["TTL"] == "120"
    topic = got.headers["Topic"]
    assert len(topic) <= 32 and all(c.isalnum() or c in "-_" for c in topic)
    assert got.body.count(b"INBOX") == 0  # encrypted on the wire
    # The key file is private and reused on the next start.
    assert (tmp_path / VAPID_FILE).stat().st_mode & 0o777 == 0o600
    again = VapidKey.load_or_create(tmp_path, "mailto:admin@example.org")
    assert again.application_server_key == key.application_server_key


def test_webpush_payload_length_does_not_depend_on_counts(tmp_path: Path) -> None:
    key = VapidKey.load_or_create(tmp_path, "mailto:admin@example.org")
    alerts = [Alert("a", "INBOX", 1, 1, 1), Alert("a", "Lists/python-dev", 999, 12345, 67890)]

    async def send(ep: PushEndpoint, session: aiohttp.ClientSession) -> object:
        sender = WebPushSender(session, key, ttl=60, timeout=5)
        for a in alerts:
            await sender.send(webpush_device(ep), a, "t")
        return None

    ep, _ = asyncio.run(_with_endpoint(send))
    assert ep.errors == []
    assert len({len(r.body) for r in ep.received}) == 1


def test_webhook_is_signed_and_verifiable() -> None:
    async def send(ep: PushEndpoint, session: aiohttp.ClientSession) -> object:
        device = Device(2, 7, "webhook", ep.url("/hook"), secret="s3cret-s3cret-s3cret")
        return await WebhookSender(session, 5).send(device, ALERT, "topic")

    ep, outcome = asyncio.run(_with_endpoint(send))
    assert outcome.status == "ok"  # type: ignore[attr-defined]
    [got] = ep.received
    assert got.payload is not None and set(got.payload) == ALERT_FIELDS
    ts, sig = got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER]
    now = time.time()
    assert verify_webhook("s3cret-s3cret-s3cret", ts, sig, got.body, now)
    assert not verify_webhook("another-secret-value", ts, sig, got.body, now)
    assert not verify_webhook("s3cret-s3cret-s3cret", ts, sig, got.body + b" ", now)
    # A replay ten minutes later is refused, and the timestamp cannot be refreshed.
    assert not verify_webhook("s3cret-s3cret-s3cret", ts, sig, got.body, now + 600)
    assert not verify_webhook("s3cret-s3cret-s3cret", str(int(now) + 600), sig, got.body, now + 600)


def test_ntfy_gets_counts_only() -> None:
    async def send(ep: PushEndpoint, session: aiohttp.ClientSession) -> object:
        device = Device(3, 7, "ntfy", ep.url("/mytopic"), secret="tk_0123456789abcdef")
        return await NtfySender(session, 5).send(device, ALERT, "topic")

    ep, outcome = asyncio.run(_with_endpoint(send))
    assert outcome.status == "ok"  # type: ignore[attr-defined]
    [got] = ep.received
    assert got.body == b"3 new messages in INBOX (5 unread)"
    assert got.headers["Authorization"] == "Bearer tk_0123456789abcdef"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(201, "ok"), (404, "gone"), (410, "gone"), (500, "retry"), (503, "retry"), (429, "retry"),
     (400, "failed"), (413, "failed")],
)  # fmt: skip
def test_status_classification(status: int, expected: str) -> None:
    assert classify(status).status == expected


def test_retry_after_is_honoured_and_timeouts_retry() -> None:
    assert classify(503, "120").retry_after == 120.0
    assert classify(503, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after is None

    async def send(ep: PushEndpoint, session: aiohttp.ClientSession) -> object:
        device = Device(2, 7, "webhook", ep.url("/hook"), secret="s3cret-s3cret-s3cret")
        return await WebhookSender(session, 0.3).send(device, ALERT, "topic")

    ep, outcome = asyncio.run(_with_endpoint(send, PushEndpoint(script=["hang"])))
    assert outcome.status == "retry"  # type: ignore[attr-defined]
    assert ep.received == []
