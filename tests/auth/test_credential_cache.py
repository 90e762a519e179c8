"""The verified-credential cache: a hit only for the same password against the same
stored hash, within its lifetime."""

from __future__ import annotations

import time

from pushmail.auth.cache import CredentialCache


def test_hit_only_for_same_password_and_hash() -> None:
    c = CredentialCache(ttl=60)
    assert not c.check("a@x", "{PLAIN}pw", "pw")
    c.remember("a@x", "{PLAIN}pw", "pw")
    assert c.check("a@x", "{PLAIN}pw", "pw")
    assert not c.check("a@x", "{PLAIN}pw", "wrong")
    assert not c.check("b@x", "{PLAIN}pw", "pw")
    assert not c.check("a@x", "{PLAIN}new", "pw"), "a changed hash must not hit"


def test_expiry_and_disable() -> None:
    c = CredentialCache(ttl=0.05)
    c.remember("a@x", "h", "pw")
    time.sleep(0.1)
    assert not c.check("a@x", "h", "pw")
    off = CredentialCache(ttl=0)
    off.remember("a@x", "h", "pw")
    assert not off.check("a@x", "h", "pw") and len(off) == 0


def test_bounded() -> None:
    c = CredentialCache(ttl=60, max_entries=10)
    for i in range(50):
        c.remember(f"u{i}@x", "h", "pw")
    assert len(c) == 10
    assert c.check("u49@x", "h", "pw") and not c.check("u0@x", "h", "pw")


def test_no_plaintext_kept() -> None:
    c = CredentialCache(ttl=60)
    c.remember("a@x", "h", "very-secret-password")
    assert "very-secret-password" not in repr(c._entries)
