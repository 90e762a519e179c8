"""Recompute the stored ENVELOPE/BODYSTRUCTURE/BODY (and PREVIEW) when ``mime/`` computes them
differently than the code that stored them.

Those structures are computed once at delivery and kept with the body (see
docs/design.md), so a fix to how they are computed would otherwise reach only mail
delivered after it. ``pushmail.imap.structure.STRUCTURE_VERSION`` names the way of
computing; the ``counters`` row ``structure_version`` says which one the stored rows
follow (absent: before versioning). At startup, before any session is served,
``refresh_structures`` recomputes every body from its raw bytes, in batches of short
write transactions so that deliveries from ``pushmail deliver`` interleave, then
records the version. Bodies written meanwhile are computed by the new code already,
so a crash half-way only means some rows are recomputed again at the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pushmail.store.interfaces import MessageCache
from pushmail.store.sqlite_schema import connect

log = logging.getLogger(__name__)

_COUNTER = "structure_version"


def stored_structure_version(path: Path) -> int:
    conn = connect(path)
    try:
        row = conn.execute("SELECT value FROM counters WHERE name = ?", (_COUNTER,)).fetchone()
        return 0 if row is None else int(row[0])
    finally:
        conn.close()


def refresh_structures(
    path: Path, version: int, compute: Callable[[bytes], MessageCache], batch: int = 200
) -> int:
    """Bring every body's structures to ``version``; the number of bodies redone."""
    if stored_structure_version(path) >= version:
        return 0
    conn = connect(path)
    done, last = 0, 0
    try:
        while True:
            rows = conn.execute(
                "SELECT id, raw FROM bodies WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                break
            updates = []
            previews = []
            for body_id, raw in rows:
                cache = compute(bytes(raw))
                updates.append((cache.envelope, cache.bodystructure, cache.body, body_id))
                previews.append((body_id, cache.preview or ""))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE bodies SET envelope = ?, bodystructure = ?, body = ? WHERE id = ?",
                updates,
            )
            # The body may have gone meanwhile: only bodies that still exist.
            conn.executemany(
                "INSERT INTO previews (body_id, preview) SELECT id, ? FROM bodies WHERE id = ? "
                "ON CONFLICT (body_id) DO UPDATE SET preview = excluded.preview",
                [(text, body_id) for body_id, text in previews],
            )
            conn.execute("COMMIT")
            done += len(rows)
            last = int(rows[-1][0])
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (_COUNTER, version),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    if done:
        log.info("recomputed the structures of %d stored messages (version %d)", done, version)
    return done
