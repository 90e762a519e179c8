"""Who is calling the HTTP API: HTTP Basic with the mail password, or a session
cookie that the login form sets.

The cookie is stateless: ``<user id>.<expiry>.<mac>``, the MAC (HMAC-SHA256 under
the push database's secret) also covering a fingerprint of the user's password hash,
so changing the password ends every session, and sessions work across restarts
without a session table. Password checks (argon2, tens of ms) run on a thread pool;
an unknown user is checked against a dummy hash so both refusals take as long.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from pushmail.auth.guard import LoginGuard
from pushmail.auth.passwords import verify_password
from pushmail.push.engine import StoreAccess
from pushmail.store.interfaces import User

COOKIE = "pushmail_session"
SESSION_SECONDS = 7 * 24 * 3600
FAILURE_DELAY = 1.0  # seconds before answering a failed login


@dataclass(frozen=True, slots=True)
class Authenticator:
    store: StoreAccess
    secret: bytes
    pool: ThreadPoolExecutor
    dummy_hash: str
    guard: LoginGuard = field(default_factory=LoginGuard)  # password-guessing limits

    async def check_password(
        self, address: str, password: str, client: str = "local"
    ) -> User | None:
        """The user if the password is right, else None (after FAILURE_DELAY); 429
        when a password-guessing limit refuses the attempt unchecked."""
        address = address.strip().lower()
        if self.guard.admit("web", client, address) is not None:
            raise web.HTTPTooManyRequests(reason="too many login attempts, try again later")
        user = await self.store.run(lambda st: st.get_user(address))
        stored = user.password_hash if user is not None else self.dummy_hash
        ok = await self.guard.check(
            "web", client, address, self.pool, verify_password, stored, password
        )
        self.guard.settle("web", client, address, ok if ok is None else ok and user is not None)
        if ok is None:
            raise web.HTTPTooManyRequests(reason="too many login attempts, try again later")
        if ok and user is not None:
            return user
        await asyncio.sleep(FAILURE_DELAY)
        return None

    async def check_basic(self, header: str, client: str = "local") -> User | None:
        """``Authorization: Basic base64(address:password)``."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        address, sep, password = decoded.partition(":")
        if not sep:
            return None
        return await self.check_password(address, password, client)

    def make_cookie(self, user: User, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_SECONDS)
        return f"{user.id}.{expiry}.{self._mac(user, expiry)}"

    async def check_cookie(self, value: str, now: float | None = None) -> User | None:
        parts = value.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        user_id, expiry = int(parts[0]), int(parts[1])
        if expiry < (now or time.time()):
            return None
        user = await self.store.run(lambda st: st.get_user_by_id(user_id))
        if user is None or not hmac.compare_digest(parts[2], self._mac(user, expiry)):
            return None
        return user

    def _mac(self, user: User, expiry: int) -> str:
        fingerprint = hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
        message = f"session:{user.id}:{expiry}:{fingerprint}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()
