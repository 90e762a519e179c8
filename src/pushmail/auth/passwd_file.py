"""Reading Dovecot's passwd-file format, for ``pushmail user import``.

A passwd-file line is ``user:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]``; ``#``
starts a comment line and blank lines are ignored (Dovecot's ``auth-passwd-file``).
Only the first two fields matter to pushmail (mail is stored by the server, not in a
home directory), so the rest are accepted and dropped.

Hashes are kept exactly as written: re-hashing is impossible without the passwords,
and ``verify_password`` understands the schemes these files hold. A line whose scheme
we cannot verify is refused here, at import time, with its line number, rather than
becoming a user who can never log in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BadLine", "PasswdEntry", "parse_passwd_file"]

# Scheme -> how a well-formed hash of it starts ("" for any non-empty text).
SCHEME_PREFIXES: dict[str, tuple[str, ...]] = {
    "PLAIN": ("",),
    "CLEARTEXT": ("",),
    "SHA512-CRYPT": ("$6$",),
    "SHA256-CRYPT": ("$5$",),
    "BLF-CRYPT": ("$2a$", "$2b$", "$2y$"),
    "ARGON2ID": ("$argon2id$",),
    "ARGON2I": ("$argon2i$",),
}


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    """One user to create: an address and a ``{SCHEME}hash`` stored as given."""

    line: int
    address: str
    password_hash: str

    def __repr__(self) -> str:  # the hash never reaches a log
        return f"PasswdEntry(line={self.line}, address={self.address!r})"


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was not imported, and why (never quoting the password field)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def parse_passwd_file(
    lines: Iterable[str], domain: str | None = None
) -> tuple[list[PasswdEntry], list[BadLine]]:
    """Parse every line; good entries and bad lines both come back, so the caller can
    report all problems at once. A bare user name gets ``@domain`` when ``domain`` is
    given. A repeated address is a bad line: which hash wins would be a guess."""
    entries: list[PasswdEntry] = []
    bad: list[BadLine] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        text = text.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        result = _parse_line(number, text, domain)
        if isinstance(result, BadLine):
            bad.append(result)
        elif result.address in seen:
            bad.append(BadLine(number, f"{result.address} already on line {seen[result.address]}"))
        else:
            seen[result.address] = number
            entries.append(result)
    return entries, bad


def _parse_line(number: int, text: str, domain: str | None) -> PasswdEntry | BadLine:
    fields = text.split(":")
    if len(fields) < 2:
        return BadLine(number, "expected user:{SCHEME}hash")
    address = _address(fields[0].strip(), domain)
    if address is None:
        return BadLine(number, f"not a valid address: {fields[0].strip()!r}")
    stored = fields[1]
    scheme, brace, rest = stored.partition("}")
    if not stored.startswith("{") or not brace:
        return BadLine(number, "password has no {SCHEME} prefix")
    name = scheme[1:].upper()
    prefixes = SCHEME_PREFIXES.get(name)
    if prefixes is None:
        return BadLine(number, f"unsupported password scheme {{{scheme[1:]}}}")
    if not rest or not rest.startswith(prefixes):
        return BadLine(number, f"malformed {{{name}}} hash")
    return PasswdEntry(number, address, "{" + name + "}" + rest)


def _address(user: str, domain: str | None) -> str | None:
    if "@" not in user and domain:
        user = f"{user}@{domain}"
    address = user.lower()
    local, at, host = address.rpartition("@")
    if not at or not local or not host:
        return None
    if any(c.isspace() or c in '<>"\\' or ord(c) < 32 for c in address):
        return None
    return address
