"""The typed METADATA commands (RFC 5464), apart from ``commands.py`` only for its
length; ``commands.Command`` includes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Depth = Literal["0", "1", "infinity"]


@dataclass(frozen=True, slots=True)
class Metadata:
    """GETMETADATA [(MAXSIZE n DEPTH d)] mailbox entries, and SETMETADATA mailbox
    (entry value ...). Mailbox "" names the server; entry names are as sent (the
    handler folds their case, RFC 5464 §3.2)."""

    tag: str
    kind: Literal["GETMETADATA", "SETMETADATA"]
    mailbox: str
    entries: tuple[str, ...] = ()  # GETMETADATA's
    values: tuple[tuple[str, bytes | None], ...] = ()  # SETMETADATA's; None: delete
    maxsize: int | None = None
    depth: Depth = "0"

    @property
    def name(self) -> str:
        return self.kind
