"""The name of a part of a message: BODY[1.2.HEADER], BINARY[3] (RFC 3501 §6.4.5).

A leaf module with no imports of its own: the IMAP command types (``imap/commands``)
carry it and ``sections`` resolves it, so neither mime/ imports the IMAP core nor the
IMAP core pulls in the ``email`` package (which imports ``socket``) to name a part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Section:
    """A ``section`` of BODY[...] / BINARY[...] (RFC 3501 §6.4.5).

    ``part`` is the dotted part number (empty for the whole message); ``text`` is the
    section-text, or None for the whole part; ``fields`` the header names for
    HEADER.FIELDS and HEADER.FIELDS.NOT (upper-cased).
    """

    part: tuple[int, ...] = ()
    text: Literal["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"] | None = None
    fields: tuple[str, ...] = ()
