"""Account names as users and MTAs type them.

Operators coming from Dovecot have users who log in as ``alice`` and MTAs that
deliver to ``alice``; Dovecot's ``auth_default_realm`` appends a domain to such bare
names. ``default_domain`` does the same here, in one place, for logins (IMAP,
submission), LMTP recipients and ``pushmail user add/import``. Without it a bare
name stays as it is (and matches no account, since every account is an address).
"""

from __future__ import annotations

__all__ = ["qualify"]


def qualify(name: str, default_domain: str | None) -> str:
    """``name`` lower-cased, with ``@default_domain`` added when it has no domain."""
    name = name.strip().lower()
    if default_domain and name and "@" not in name:
        return f"{name}@{default_domain.lower()}"
    return name
