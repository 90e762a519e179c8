"""UIDONLY (RFC 9586): once enabled, a client names messages by UID only.

The server answers every command that takes message sequence numbers (the non-UID
FETCH, STORE, COPY, MOVE, SEARCH, SORT, THREAD; a bare sequence set as a SEARCH
key, even in UID SEARCH; the message sequence match data of SELECT QRESYNC) with
``BAD [UIDREQUIRED]`` (§3). Responses change too: ``* uid UIDFETCH (...)`` for
FETCH, ``VANISHED`` for EXPUNGE (``SelectedView``).
"""

from __future__ import annotations

from pushmail.imap import commands as c
from pushmail.imap.errors import ProtocolError

UIDREQUIRED = "UIDREQUIRED"


def check_uid_only(cmd: c.Command, uses_seqnums: bool) -> None:
    """``ProtocolError`` with UIDREQUIRED if ``cmd`` uses message numbers;
    ``uses_seqnums`` is the command table's SEQNUMS flag for its row."""
    if uses_seqnums:
        raise ProtocolError(f"{cmd.name} uses message numbers: use UID {cmd.name}", UIDREQUIRED)
    key = getattr(cmd, "key", None)
    if key is not None and _has_seqset(key):
        raise ProtocolError("message numbers in a search key: use UID", UIDREQUIRED)
    if isinstance(cmd, c.Select) and cmd.qresync is not None and cmd.qresync.seq_match:
        raise ProtocolError("message sequence match data names message numbers", UIDREQUIRED)


def _has_seqset(key: object) -> bool:
    """Whether a bare sequence set (not ``UID set``) occurs anywhere in ``key``."""
    if isinstance(key, c.SearchSet):
        return not key.uid
    if isinstance(key, c.SearchNot):
        return _has_seqset(key.key)
    if isinstance(key, c.SearchOr):
        return _has_seqset(key.left) or _has_seqset(key.right)
    if isinstance(key, c.SearchAnd):
        return any(_has_seqset(k) for k in key.keys)
    return False
