"""The errors of the IMAP layer; each knows the reply it becomes (design.md rule 7)."""

from __future__ import annotations


class ImapError(Exception):
    """Base: a problem that becomes a tagged status response, never a crash."""

    status = "BAD"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code  # a response code such as "TRYCREATE" or "CLIENTBUG"


class ProtocolError(ImapError):
    """The peer's bytes do not follow the grammar: ``BAD``."""

    status = "BAD"


class CommandFailed(ImapError):
    """A well-formed command that cannot be done: ``NO``."""

    status = "NO"
