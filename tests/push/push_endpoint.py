"""A real receiving end for alerts, for tests: a local HTTP server that plays push
service and browser at once. It holds a Web Push subscription's private key and auth
secret, verifies each request's VAPID JWT (RFC 8292, ES256) with ``cryptography``,
decrypts the aes128gcm payload (RFC 8291) with ``http_ece``, and records what it found.
It can also be told to answer with errors or to hang, to exercise retries.

Run it in the test's own event loop (``start``), or on a thread of its own
(``ThreadedEndpoint``) when the sender is another process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    """One request the endpoint accepted."""

    path: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None  # decrypted JSON (Web Push) or parsed JSON
    claims: dict[str, Any] | None  # the verified VAPID JWT claims
    at: float  # time.time() of arrival


@dataclass
class PushEndpoint:
    """See module docstring. ``script`` holds answers for the next requests (an HTTP
    status, or ``"hang"`` to never answer); when empty, requests get 201."""

    script: list[int | str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempts: int = 0
    _key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    _auth: bytes = field(default_factory=lambda: os.urandom(16))
    _runner: web.AppRunner | None = None
    _hangs: set[asyncio.Task[object]] = field(default_factory=set)  # "hang" answers
    base_url: str = ""

    @property
    def keys(self) -> dict[str, str]:
        """The subscription's keys as ``PushSubscription.toJSON().keys`` gives them."""
        point = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(point), "auth": b64url(self._auth)}

    def url(self, path: str = "/push/sub1") -> str:
        return self.base_url + path

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        # Hanging answers end with the endpoint: aiohttp does not cancel a handler
        # whose client went away, and its cleanup would wait for them.
        for hang in self._hangs:
            hang.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        body = await request.read()
        answer = self.script.pop(0) if self.script else 201
        if answer == "hang":
            hang: asyncio.Task[object] = asyncio.ensure_future(asyncio.sleep(3600))
            self._hangs.add(hang)
            try:
                await hang
            except asyncio.CancelledError:
                return web.Response(status=503)
            finally:
                self._hangs.discard(hang)
        if answer != 201:
            return web.Response(status=int(answer))
        headers = dict(request.headers)
        try:
            if request.path.startswith("/push/"):
                claims = self._verify_vapid(headers.get("Authorization", ""))
                payload = self._decrypt(headers, body)
            else:
                claims, payload = None, json.loads(body) if body[:1] == b"{" else None
        except Exception as e:  # a test asserts there were none
            self.errors.append(f"{type(e).__name__}: {e}")
            return web.Response(status=400)
        self.received.append(Received(request.path, headers, body, payload, claims, time.time()))
        return web.Response(status=201)

    def _verify_vapid(self, header: str) -> dict[str, Any]:
        """RFC 8292 §3: ``vapid t=<JWT>, k=<public key>``; the JWT is ES256-signed
        by that key, its ``aud`` is our origin, ``exp`` within 24 h, ``sub`` set."""
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"not a vapid Authorization: {header!r}")
        parts = dict(p.strip().split("=", 1) for p in params.split(","))
        token, key = parts["t"], parts["k"]
        head_b64, claims_b64, sig_b64 = token.split(".")
        head = json.loads(unb64url(head_b64))
        if head.get("alg") != "ES256":
            raise ValueError(f"JWT alg {head.get('alg')}")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        sig = unb64url(sig_b64)
        der = utils.encode_dss_signature(
            int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        )
        try:
            public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ValueError("VAPID JWT signature does not verify") from None
        claims: dict[str, Any] = json.loads(unb64url(claims_b64))
        if claims.get("aud") != self.base_url:
            raise ValueError(f"aud {claims.get('aud')!r} is not {self.base_url!r}")
        if not time.time() < claims["exp"] <= time.time() + 24 * 3600:
            raise ValueError(f"exp {claims['exp']} out of range")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub missing")
        return claims

    def _decrypt(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if headers.get("Content-Encoding") != "aes128gcm":
            raise ValueError(f"Content-Encoding {headers.get('Content-Encoding')!r}")
        plain = http_ece.decrypt(
            body, private_key=self._key, auth_secret=self._auth, version="aes128gcm"
        )
        data: dict[str, Any] = json.loads(plain)
        data["_length"] = len(plain)
        return data


class ThreadedEndpoint:
    """A PushEndpoint on its own thread and loop (for a server in another process)."""

    def __init__(self) -> None:
        self.endpoint = PushEndpoint()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> PushEndpoint:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.endpoint.start(), self._loop).result(10)
        return self.endpoint

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.endpoint.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
