"""Password schemes: Drepper's published SHA-crypt vectors, and every Dovecot scheme
that ``verify_password`` claims to accept, against both right and wrong passwords."""

from __future__ import annotations

import bcrypt
import pytest
from argon2 import PasswordHasher, Type

from pushmail.auth.passwords import hash_password, needs_rehash, sha_crypt, verify_password

LONG = "a very much longer text to encrypt.  This one even stretches over morethan one line."
SHORT_SALT = "we have a short salt string but not a short password"
LOW = "the minimum number is still observed"

# (password, setting, expected) from "Unix crypt using SHA-256 and SHA-512", U. Drepper.
SHA256_VECTORS = [
    ("Hello world!", "$5$saltstring", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    (
        "Hello world!",
        "$5$rounds=10000$saltstringsaltstring",
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
    ),
    (
        "This is just a test",
        "$5$rounds=5000$toolongsaltstring",
        "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5",
    ),
    (
        LONG,
        "$5$rounds=1400$anotherlongsaltstring",
        "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1",
    ),
    (
        SHORT_SALT,
        "$5$rounds=77777$short",
        "$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/",
    ),
    (
        "a short string",
        "$5$rounds=123456$asaltof16chars..",
        "$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD",
    ),
    (
        LOW,
        "$5$rounds=10$roundstoolow",
        "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
    ),
]
SHA512_VECTORS = [
    (
        "Hello world!",
        "$6$saltstring",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLi"
        "BFdcbYEdFCoEOfaS35inz1",
    ),
    (
        "Hello world!",
        "$6$rounds=10000$saltstringsaltstring",
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/"
        "UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    ),
    (
        "This is just a test",
        "$6$rounds=5000$toolongsaltstring",
        "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZx"
        "Uhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
    ),
    (
        LONG,
        "$6$rounds=1400$anotherlongsaltstring",
        "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3C"
        "mLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
    ),
    (
        SHORT_SALT,
        "$6$rounds=77777$short",
        "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CC"
        "aUeOxFmtlcGZelFl5CxtgfiAc0",
    ),
    (
        "a short string",
        "$6$rounds=123456$asaltof16chars..",
        "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec"
        "6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1",
    ),
    (
        LOW,
        "$6$rounds=10$roundstoolow",
        "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58"
        "jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
    ),
]


@pytest.mark.parametrize(("password", "setting", "expected"), SHA256_VECTORS + SHA512_VECTORS)
def test_sha_crypt_matches_drepper_vectors(password: str, setting: str, expected: str) -> None:
    assert sha_crypt(password.encode(), setting) == expected


@pytest.mark.parametrize(
    ("scheme", "password", "stored"),
    [("SHA256-CRYPT", p, e) for p, _, e in SHA256_VECTORS[:4]]
    + [("SHA512-CRYPT", p, e) for p, _, e in SHA512_VECTORS[:4]],
)
def test_verify_sha_crypt_schemes(scheme: str, password: str, stored: str) -> None:
    assert verify_password("{" + scheme + "}" + stored, password)
    assert not verify_password("{" + scheme + "}" + stored, password + "x")
    assert not verify_password("{" + scheme + "}" + stored, password[:-1])


def test_sha_crypt_scheme_must_match_magic() -> None:
    _, _, sha512 = SHA512_VECTORS[0]
    assert not verify_password("{SHA256-CRYPT}" + sha512, "Hello world!")


def test_new_hash_is_argon2id_and_verifies() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("{ARGON2ID}$argon2id$")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horsE")
    assert not needs_rehash(stored)
    assert hash_password("correct horse") != stored  # salted


def test_unicode_password_round_trips() -> None:
    stored = hash_password("pässwörd ✓")
    assert verify_password(stored, "pässwörd ✓")
    assert not verify_password(stored, "passwort")


def test_argon2i_scheme() -> None:
    raw = PasswordHasher(type=Type.I, time_cost=1, memory_cost=1024).hash("pw")
    assert verify_password("{ARGON2I}" + raw, "pw")
    assert not verify_password("{ARGON2I}" + raw, "pw2")
    assert not verify_password("{ARGON2ID}" + raw, "pw")  # the scheme names the variant
    assert needs_rehash("{ARGON2I}" + raw)


def test_outdated_argon2id_parameters_need_rehash() -> None:
    raw = PasswordHasher(type=Type.ID, time_cost=1, memory_cost=1024).hash("pw")
    assert verify_password("{ARGON2ID}" + raw, "pw")
    assert needs_rehash("{ARGON2ID}" + raw)


@pytest.mark.parametrize("prefix", [b"$2b$", b"$2a$", b"$2y$"])
def test_blf_crypt(prefix: bytes) -> None:
    raw = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    stored = "{BLF-CRYPT}" + prefix.decode() + raw[4:]
    assert verify_password(stored, "secret")
    assert not verify_password(stored, "Secret")
    assert needs_rehash(stored)


def test_blf_crypt_long_password_compares_first_72_bytes_like_dovecot() -> None:
    pw = "x" * 80
    raw = bcrypt.hashpw(pw[:72].encode(), bcrypt.gensalt(rounds=4)).decode()
    assert verify_password("{BLF-CRYPT}" + raw, pw)
    assert not verify_password("{BLF-CRYPT}" + raw, "y" * 80)


@pytest.mark.parametrize("scheme", ["PLAIN", "CLEARTEXT", "plain"])
def test_plain_schemes(scheme: str) -> None:
    assert verify_password("{" + scheme + "}hunter2", "hunter2")
    assert not verify_password("{" + scheme + "}hunter2", "hunter3")
    assert not verify_password("{" + scheme + "}hunter2", "")
    assert needs_rehash("{" + scheme + "}hunter2")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "hunter2",
        "{PLAIN}",
        "{MD5-CRYPT}$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/",
        "{SSHA}abcd",
        "{ARGON2ID}not-a-hash",
        "{BLF-CRYPT}$2b$04$short",
        "{BLF-CRYPT}$2x$04$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
        "{SHA512-CRYPT}$6$rounds=abc$salt$hash",
        "{SHA512-CRYPT}$6$nosalthash",
        "{SHA512-CRYPT}$6$salt$wrong",
        "{SHA512-CRYPT}$6$sält$hash",
        "PLAIN}hunter2",
    ],
)
def test_unknown_or_malformed_is_false_not_an_exception(stored: str) -> None:
    assert verify_password(stored, "hunter2") is False
    assert needs_rehash(stored)
