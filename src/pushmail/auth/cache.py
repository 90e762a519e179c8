"""A cache of recently verified credentials, as Dovecot's auth cache.

Password hashes are slow on purpose (argon2id: tens of milliseconds of CPU), and a
phone on a flaky network logs in again and again; 100,000 clients reconnecting after a
restart would need hours of CPU. After a successful check we remember an HMAC of the
password under a per-process random key, tied to the stored hash it was checked
against, for ``ttl`` seconds. A later login with the same password is then a single
HMAC comparison; a wrong password, a changed hash or an expired entry goes to the full
check. Plaintext passwords are never kept, and the key dies with the process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict


class CredentialCache:
    def __init__(self, ttl: float = 3600.0, max_entries: int = 200_000) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl = ttl
        self._max = max_entries
        # (address, digest of the stored hash) -> (HMAC of the password, expiry)
        self._entries: OrderedDict[tuple[str, bytes], tuple[bytes, float]] = OrderedDict()

    def _slot(self, address: str, stored: str) -> tuple[str, bytes]:
        return address, hashlib.sha256(stored.encode()).digest()[:16]

    def _mac(self, address: str, password: str) -> bytes:
        msg = address.encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def check(self, address: str, stored: str, password: str) -> bool:
        """True if this password was verified against this stored hash recently."""
        if self._ttl <= 0:
            return False
        slot = self._slot(address, stored)
        entry = self._entries.get(slot)
        if entry is None:
            return False
        mac, expires = entry
        if time.monotonic() > expires:
            del self._entries[slot]
            return False
        return hmac.compare_digest(mac, self._mac(address, password))

    def remember(self, address: str, stored: str, password: str) -> None:
        if self._ttl <= 0:
            return
        slot = self._slot(address, stored)
        self._entries[slot] = (self._mac(address, password), time.monotonic() + self._ttl)
        self._entries.move_to_end(slot)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
