"""GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208) over the store's per-user quota.

Each user has one quota root, named "" (one root may span all of a user's
mailboxes), that exists while the user has a limit; a user without limits has no
quota root, so GETQUOTAROOT lists none (the formal syntax's ``quota-list`` may not
be empty).
STORAGE is reported in units of 1024 octets, the usage rounded up as Dovecot does.
SETQUOTA is refused: limits are the administrator's (``pushmail user quota``), and
the server does not advertise QUOTASET, which a server that implements SETQUOTA
must (RFC 9208 §1, §4.1.3).
"""

from __future__ import annotations

from pushmail.imap import commands as c
from pushmail.imap.encoder import mailbox as enc_mailbox
from pushmail.imap.encoder import quoted
from pushmail.imap.errors import CommandFailed
from pushmail.imap.session import Session
from pushmail.store.interfaces import Quota, QuotaUsage, Store

ROOT = ""


def quota(s: Session, cmd: c.GetQuota, store: Store) -> None:
    user = s.require_user()
    if cmd.kind == "SETQUOTA":
        raise CommandFailed(
            "quotas are set by the administrator (pushmail user quota)", "NOPERM"
        )
    limits, used = store.get_quota(user.id)
    if cmd.kind == "GETQUOTAROOT":
        box = s.mailbox(store, cmd.argument)
        roots = b"" if limits.empty else b" " + quoted(ROOT.encode())
        s.untagged(b"QUOTAROOT " + enc_mailbox(box.name) + roots)
        if not limits.empty:
            s.untagged(quota_line(limits, used))
        s.ok(cmd.tag, "GETQUOTAROOT completed")
        return
    if cmd.argument != ROOT or limits.empty:
        raise CommandFailed(f"no quota root {cmd.argument!r}", "NONEXISTENT")
    s.untagged(quota_line(limits, used))
    s.ok(cmd.tag, "GETQUOTA completed")


def quota_line(limits: Quota, used: QuotaUsage) -> bytes:
    """``QUOTA "" (STORAGE used limit MESSAGE used limit)``; only limited resources."""
    resources: list[str] = []
    if limits.storage is not None:
        resources.append(f"STORAGE {-(-used.storage // 1024)} {limits.storage // 1024}")
    if limits.messages is not None:
        resources.append(f"MESSAGE {used.messages} {limits.messages}")
    return b"QUOTA " + quoted(ROOT.encode()) + b" (" + " ".join(resources).encode() + b")"
