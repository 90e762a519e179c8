"""CATENATE URL parts copy stored mail, so the bytes one APPEND builds are bounded
(``ServerInfo.max_append``, from ``limits.max_literal``): a short command naming one
message many times gets ``NO [TOOBIG]`` and appends nothing."""

from __future__ import annotations

import dataclasses

from test_session_harness import Client, append, raw_message, store

from pushmail.store.sqlite import SqliteStore

__all__ = ["store"]  # the fixture, re-exported for pytest


def test_url_parts_cannot_build_more_than_the_append_cap(store: SqliteStore) -> None:
    message = raw_message("big") + b"x" * 600
    c = Client(store)
    cap = 3 * len(message) + 10  # three copies fit, four do not
    c.session.server = dataclasses.replace(c.session.server, max_append=cap)
    c.login()
    append(c, "INBOX", message)
    url = ' URL "/INBOX/;UID=1"'
    ok = c.send("a APPEND Drafts CATENATE (" + (url * 3)[1:] + ")")
    assert b"a OK [APPENDUID" in ok
    refused = c.send("b APPEND Drafts CATENATE (" + (url * 4)[1:] + ")")
    assert refused.startswith(b"b NO [TOOBIG]")
    drafts = store.get_mailbox(1, "Drafts")
    assert drafts is not None and len(store.uids(drafts.id)) == 1
