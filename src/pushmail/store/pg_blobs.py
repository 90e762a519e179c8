"""Where the PostgreSQL store keeps raw message texts: behind ``BlobStore``.

A text is named by its SHA-256 and written once however many mailboxes hold it.
The store calls the blob store inside its own transaction, with the ``bodies`` row
of that digest locked, so ``put`` happens only for a digest that was not stored
and ``delete`` only for one that no message holds any more.

``PgBlobs`` keeps the texts in the same database (table ``blobs``), so a blob is
written and dropped atomically with the rows that refer to it. An object store
(S3-compatible) would implement the same three calls differently: ``put`` uploads
(idempotent, the key being the digest), ``get`` downloads, and ``delete`` defers
the removal until after COMMIT (a rolled-back delivery leaves an orphan for a
sweep to collect, never a message without its text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from psycopg import Connection


class BlobStore(Protocol):
    def put(self, conn: Connection, digest: bytes, data: bytes) -> None:
        """Store ``data`` under ``digest``; a no-op if it is there already."""
        ...

    def get(self, conn: Connection, digest: bytes) -> bytes | None:
        """The text stored under ``digest``, or None if there is none."""
        ...

    def delete(self, conn: Connection, digests: Sequence[bytes]) -> None:
        """Forget the texts of ``digests``: no message refers to them any more."""
        ...

    def count(self, conn: Connection) -> int:
        """How many texts are stored (for checks and statistics)."""
        ...


class PgBlobs:
    """``BlobStore`` on the ``blobs`` table of the store's own database."""

    def put(self, conn: Connection, digest: bytes, data: bytes) -> None:
        conn.execute(
            "INSERT INTO blobs (sha256, data) VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING",
            (digest, data),
        )

    def get(self, conn: Connection, digest: bytes) -> bytes | None:
        row = conn.execute("SELECT data FROM blobs WHERE sha256 = %s", (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, conn: Connection, digests: Sequence[bytes]) -> None:
        if digests:
            conn.execute("DELETE FROM blobs WHERE sha256 = ANY(%s)", (list(digests),))

    def count(self, conn: Connection) -> int:
        row = conn.execute("SELECT count(*) FROM blobs").fetchone()
        return 0 if row is None else int(row[0])
