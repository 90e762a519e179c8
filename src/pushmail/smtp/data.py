"""Reading the DATA section strictly (RFC 5321 §4.1.1.4, §4.5.2).

aiosmtpd's own DATA loop stores bare CR and bare LF as they come and answers an LMTP
transaction with a single reply however many recipients there are. Both matter here:

* A lone LF or CR inside DATA is how "SMTP smuggling" hides a second message behind an
  end-of-data marker that another server reads differently (``<LF>.<LF>``,
  ``<CR>.<CR>``...). Only ``<CRLF>.<CRLF>`` ends DATA here, and a message that contains a
  bare CR or LF anywhere is refused as a whole (after the terminator has been read, as
  §4.2.5 wants), so nothing that could be read as two messages is ever stored.
* Oversized messages and over-long lines are drained, not buffered, and refused with
  one reply per recipient under LMTP (RFC 2033 §4.2).

The reader works on an ``asyncio.StreamReader`` and nothing else, so it is tested with
a reader fed bytes by hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["MAX_LINE", "DataError", "DataResult", "read_data"]

MAX_LINE = 1000  # octets of a text line including CRLF (RFC 5321 §4.5.3.1.6)


@dataclass(frozen=True, slots=True)
class DataError:
    """Why a DATA section was refused, as an SMTP reply."""

    code: int
    enhanced: str
    text: str

    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


TOO_BIG = DataError(552, "5.3.4", "message size exceeds fixed maximum message size")
LINE_TOO_LONG = DataError(500, "5.5.2", "line too long (RFC 5321 4.5.3.1.6)")
BARE_EOL = DataError(550, "5.6.0", "bare CR or LF in message; lines must end with CRLF")


@dataclass(frozen=True, slots=True)
class DataResult:
    """A complete DATA section: the unstuffed message, or the reason it is refused.
    ``closed`` is True when the peer went away before the terminator."""

    content: bytes = b""
    error: DataError | None = None
    closed: bool = False


async def read_data(
    reader: asyncio.StreamReader, max_size: int | None, max_line: int = MAX_LINE
) -> DataResult:
    """Read up to and including ``<CRLF>.<CRLF>`` and undo dot-stuffing.

    ``max_size`` caps the message (bytes as sent, dot-stuffing included); None or 0
    means no cap. Once an error is known the rest is read and dropped, so memory stays
    bounded by ``max_size`` whatever the peer sends.
    """
    lines: list[bytes] = []
    size = 0
    error: DataError | None = None
    at_line_start = True  # False while draining the rest of an over-long line
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError:
            return DataResult(closed=True)
        except asyncio.LimitOverrunError as e:
            await reader.readexactly(e.consumed)
            error = error or LINE_TOO_LONG
            lines.clear()
            at_line_start = False
            continue
        if at_line_start and line == b".\r\n":
            break
        if not at_line_start:  # the tail of an over-long line
            at_line_start = True
            continue
        size += len(line)
        if error is None:
            error = _check_line(line, size, max_size, max_line)
        if error is not None:
            lines.clear()
            continue
        lines.append(line[1:] if line.startswith(b".") else line)
    if error is not None:
        return DataResult(error=error)
    return DataResult(content=b"".join(lines))


def _check_line(line: bytes, size: int, max_size: int | None, max_line: int) -> DataError | None:
    if max_size and size > max_size:
        return TOO_BIG
    if len(line) > max_line:
        return LINE_TOO_LONG
    body = line[:-2]
    if b"\r" in body or b"\n" in body:
        return BARE_EOL
    return None
