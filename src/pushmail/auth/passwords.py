"""Password hashing and verification, compatible with Dovecot's passwd-file schemes.

New passwords are hashed with argon2id and stored as ``{ARGON2ID}$argon2id$...`` so
that a pushmail user table can be exported to (or imported from) a Dovecot
passwd-file unchanged. Verification also accepts the schemes such files commonly
hold, so an operator can migrate users without resetting their passwords:

``{PLAIN}``/``{CLEARTEXT}``, ``{SHA512-CRYPT}``/``{SHA256-CRYPT}`` (Drepper's SHA-crypt,
implemented here with hashlib because the stdlib ``crypt`` module is deprecated and
missing on some platforms), ``{BLF-CRYPT}`` (bcrypt), ``{ARGON2ID}``/``{ARGON2I}``.

An unknown or malformed scheme verifies as False, never raises: a bad row in the user
table must not turn a login into a crash. Every comparison is constant-time.
Verification is deliberately slow (that is the point of these schemes), so callers on
an event loop run it in a thread.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["cheap_to_verify", "hash_password", "needs_rehash", "sha_crypt", "verify_password"]

_HASHER = PasswordHasher(type=Type.ID)

_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ROUNDS_DEFAULT = 5000
_ROUNDS_MIN = 1000
_ROUNDS_MAX = 999_999_999
_SALT_MAX = 16
_BCRYPT_MAX_PASSWORD = 72  # bytes bcrypt looks at; crypt_blowfish silently ignores the rest

# Drepper's byte permutations for the final base-64 encoding: groups of three digest
# bytes (most significant first), each producing four characters; the tail is shorter.
_SHA512_ORDER: tuple[tuple[int, ...], ...] = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
    (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
    (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
    (18, 39, 60), (40, 61, 19), (62, 20, 41), (63,),
)  # fmt: skip
_SHA256_ORDER: tuple[tuple[int, ...], ...] = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5),
    (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29), (31, 30),
)  # fmt: skip


def hash_password(pw: str) -> str:
    """Hash a new password with argon2id, in Dovecot's ``{ARGON2ID}`` notation."""
    return "{ARGON2ID}" + _HASHER.hash(pw)


def verify_password(stored: str, pw: str) -> bool:
    """True if ``pw`` matches ``stored`` (``{SCHEME}hash``); False for anything else,
    including unknown schemes and malformed hashes."""
    scheme, _, rest = stored.partition("}")
    if not scheme.startswith("{") or not rest:
        return False
    verifier = _VERIFIERS.get(scheme[1:].upper())
    if verifier is None:
        return False
    try:
        return verifier(rest, pw.encode("utf-8"))
    except (ValueError, UnicodeError):
        return False


def cheap_to_verify(stored: str) -> bool:
    """True for a scheme with no key stretching (``{PLAIN}``/``{CLEARTEXT}``): its
    check is one constant-time comparison, microseconds, so a caller on an event
    loop does it in place rather than paying a trip to a thread, and remembering
    it in the credential cache would cost more than checking again."""
    scheme, _, _ = stored.partition("}")
    return scheme[1:].upper() in _CHEAP


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` is not argon2id with the current parameters, so a caller
    that has just verified the password should store ``hash_password(pw)`` instead."""
    if not stored.upper().startswith("{ARGON2ID}"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored[len("{ARGON2ID}") :])
    except (InvalidHashError, ValueError):
        return True


# -- verifiers -------------------------------------------------------------------------


def _verify_plain(rest: str, pw: bytes) -> bool:
    return hmac.compare_digest(rest.encode("utf-8"), pw)


def _verify_argon2(prefix: str) -> Callable[[str, bytes], bool]:
    def verify(rest: str, pw: bytes) -> bool:
        if not rest.startswith(prefix):  # {ARGON2I} must not accept an argon2d hash
            return False
        try:
            return _HASHER.verify(rest, pw)
        except (VerificationError, InvalidHashError):
            return False

    return verify


def _verify_bcrypt(rest: str, pw: bytes) -> bool:
    if not rest.startswith(("$2a$", "$2b$", "$2y$")):
        return False
    return bcrypt.checkpw(pw[:_BCRYPT_MAX_PASSWORD], rest.encode("ascii"))


def _verify_sha_crypt(magic: str) -> Callable[[str, bytes], bool]:
    def verify(rest: str, pw: bytes) -> bool:
        if not rest.startswith(magic) or rest.count("$") < 3:
            return False
        setting = rest.rsplit("$", 1)[0]
        expected = sha_crypt(pw, setting)
        return hmac.compare_digest(expected.encode("ascii"), rest.encode("ascii"))

    return verify


_CHEAP = frozenset({"PLAIN", "CLEARTEXT"})
_VERIFIERS: dict[str, Callable[[str, bytes], bool]] = {
    "PLAIN": _verify_plain,
    "CLEARTEXT": _verify_plain,
    "SHA512-CRYPT": _verify_sha_crypt("$6$"),
    "SHA256-CRYPT": _verify_sha_crypt("$5$"),
    "BLF-CRYPT": _verify_bcrypt,
    "ARGON2ID": _verify_argon2("$argon2id$"),
    "ARGON2I": _verify_argon2("$argon2i$"),
}


# -- SHA-crypt (Drepper, "Unix crypt using SHA-256 and SHA-512") --------------------------


def sha_crypt(password: bytes, setting: str) -> str:
    """Compute ``crypt(3)`` for a ``$5$`` or ``$6$`` setting (``$6$[rounds=N$]salt``).

    Follows the specification step by step; the step numbers in comments are its own.
    Raises ValueError for a setting that is neither scheme or has bad rounds.
    """
    if setting.startswith("$6$"):
        algo, order, magic = "sha512", _SHA512_ORDER, "$6$"
    elif setting.startswith("$5$"):
        algo, order, magic = "sha256", _SHA256_ORDER, "$5$"
    else:
        raise ValueError("not a SHA-crypt setting")
    body = setting[len(magic) :]
    rounds, custom_rounds = _ROUNDS_DEFAULT, False
    if body.startswith("rounds="):
        value, sep, body = body[len("rounds=") :].partition("$")
        if not sep or not value.isdigit():
            raise ValueError("bad rounds")
        rounds, custom_rounds = max(_ROUNDS_MIN, min(_ROUNDS_MAX, int(value))), True
    salt = body.split("$", 1)[0][:_SALT_MAX].encode("ascii")
    digest = _sha_crypt_digest(algo, password, salt, rounds)
    prefix = magic + (f"rounds={rounds}$" if custom_rounds else "")
    return prefix + salt.decode("ascii") + "$" + _encode_digest(digest, order)


def _repeat_to(block: bytes, length: int) -> bytes:
    """``block`` repeated and cut to ``length`` bytes (the spec's steps 16 and 20)."""
    return (block * (length // len(block) + 1))[:length]


def _sha_crypt_digest(algo: str, pw: bytes, salt: bytes, rounds: int) -> bytes:
    def new(data: bytes = b"") -> hashlib._Hash:
        return hashlib.new(algo, data)

    b = new(pw + salt + pw).digest()  # steps 4-8
    a = new(pw + salt)  # steps 1-3
    a.update(_repeat_to(b, len(pw)))  # steps 9-10
    n = len(pw)
    while n:  # step 11: a bit per length bit, LSB first
        a.update(b if n & 1 else pw)
        n >>= 1
    a_digest = a.digest()  # step 12
    p_seq = _repeat_to(new(pw * len(pw)).digest(), len(pw))  # steps 13-16
    s_seq = _repeat_to(new(salt * (16 + a_digest[0])).digest(), len(salt))  # steps 17-20
    c = a_digest
    for r in range(rounds):  # step 21
        ctx = new(p_seq if r & 1 else c)
        if r % 3:
            ctx.update(s_seq)
        if r % 7:
            ctx.update(p_seq)
        ctx.update(c if r & 1 else p_seq)
        c = ctx.digest()
    return c


def _encode_digest(digest: bytes, order: tuple[tuple[int, ...], ...]) -> str:
    """The spec's step 22: crypt's own base-64, least significant 6 bits first."""
    out: list[str] = []
    for group in order:
        value = 0
        for index in group:
            value = (value << 8) | digest[index]
        for _ in range(len(group) + 1):
            out.append(_CRYPT_ALPHABET[value & 0x3F])
            value >>= 6
    return "".join(out)
