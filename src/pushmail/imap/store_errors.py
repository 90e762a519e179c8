"""The store's errors as IMAP replies: one table, as Dovecot's
``imap_get_error_string()`` maps its ``MAIL_ERROR_*`` to response codes.

A handler that knows better (``TRYCREATE`` for a missing COPY target, say) raises
its own ``CommandFailed``; any store error that reaches the command table is
answered ``NO`` with the code found here for its class (the nearest base class
listed wins) and never ends the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pushmail.store.interfaces import (
    AlreadyExists,
    Conflict,
    KeywordLimit,
    NoSpace,
    NotFound,
    OverQuota,
    StoreError,
    StoreUnavailable,
)

# Response codes of RFC 5530 (and RFC 9051 §7.1).
STORE_ERROR_CODES: Mapping[type[BaseException], str] = MappingProxyType(
    {
        NotFound: "NONEXISTENT",  # no such mailbox (or user, or message)
        AlreadyExists: "ALREADYEXISTS",
        Conflict: "CANNOT",  # the operation breaks an invariant (DELETE INBOX)
        KeywordLimit: "LIMIT",  # MAX_KEYWORDS_PER_MAILBOX
        NoSpace: "OVERQUOTA",  # the disk or database is full (Dovecot: NOSPACE)
        OverQuota: "OVERQUOTA",  # the user's quota (RFC 9208 §5.3)
        StoreUnavailable: "UNAVAILABLE",  # the database is down: try again later
        StoreError: "SERVERBUG",  # anything else the store refused
    }
)


def response_code(err: StoreError) -> str:
    """The response code for ``err``: that of the nearest class in the table."""
    for cls in type(err).__mro__:
        code = STORE_ERROR_CODES.get(cls)
        if code is not None:
            return code
    return "SERVERBUG"  # not reached: every StoreError has StoreError in its MRO


def reply_text(err: StoreError) -> str:
    """The human part of the ``NO``: the error's own text, or a general one."""
    return str(err) or {
        "UNAVAILABLE": "the mail store is unavailable, try again later",
        "OVERQUOTA": "not enough space",
    }.get(response_code(err), "store error")
