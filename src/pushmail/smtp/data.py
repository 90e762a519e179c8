"""Reading the DATA section (RFC 5321 §4.1.1.4, §4.5.2) as MTAs really send it.

aiosmtpd's own DATA loop stores bare CR and bare LF as they come and answers an LMTP
transaction with a single reply however many recipients there are. Here:

* Only ``<CRLF>.<CRLF>`` ends DATA. "SMTP smuggling" hides a second message behind an
  end-of-data marker that another server reads differently (``<LF>.<LF>``,
  ``<CR>.<CR>``, ``<LF>.<CRLF>``...). A message holding any such dot line (a line
  ``.`` that a bare LF ends or follows) or a bare CR anywhere is refused as a whole,
  after the real terminator has been read (§4.2.5), so nothing that could be read as
  two messages is ever stored.
* Any other bare LF ends a line and is stored as CRLF, as Postfix's default
  ``smtpd_forbid_bare_newline = normalize`` does: broken clients that send LF-only
  lines are common, and refusing them bounces real mail.
* Lines longer than RFC 5321's 1000 octets are accepted up to ``MAX_LINE``: Postfix
  passes such lines on to LMTP, and refusing them bounced real mail. The cap keeps
  what one line may buffer bounded.
* Oversized messages and over-long lines are drained, not buffered, and refused with
  one reply per recipient under LMTP (RFC 2033 §4.2).

The reader works on an ``asyncio.StreamReader`` and nothing else, so it is tested with
a reader fed bytes by hand. Its limit must be at least ``max_line``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["MAX_LINE", "DataError", "DataResult", "read_data"]

MAX_LINE = 64 * 1024  # octets of one line including its line ending (documented)


@dataclass(frozen=True, slots=True)
class DataError:
    """Why a DATA section was refused, as an SMTP reply."""

    code: int
    enhanced: str
    text: str

    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


TOO_BIG = DataError(552, "5.3.4", "message size exceeds fixed maximum message size")
LINE_TOO_LONG = DataError(500, "5.5.2", f"line too long (over {MAX_LINE} octets)")
BARE_EOL = DataError(
    550, "5.6.0", "bare CR, or a dot line with bare LF, in message; end lines with CRLF"
)


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
    """Read up to and including ``<CRLF>.<CRLF>``, undo dot-stuffing and turn bare
    LF line ends into CRLF.

    ``max_size`` caps the message (bytes as stored, dot-stuffing included); None or 0
    means no cap. Once an error is known the rest is read and dropped, so memory stays
    bounded by ``max_size`` whatever the peer sends.
    """
    lines: list[bytes] = []
    size = 0
    error: DataError | None = None
    at_line_start = True  # False while draining the rest of an over-long line
    after_crlf = True  # the line before ended in CRLF (or this is the first)
    drained = b""  # the last byte dropped of an over-long line (its CR, maybe)
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return DataResult(closed=True)
        except asyncio.LimitOverrunError as e:
            drained = (await reader.readexactly(e.consumed))[-1:] or drained
            error = error or LINE_TOO_LONG
            lines.clear()
            at_line_start = False
            continue
        if not at_line_start:  # the tail of an over-long line
            at_line_start, after_crlf = True, (drained + line).endswith(b"\r\n")
            continue
        if after_crlf and line == b".\r\n":
            break
        crlf = line.endswith(b"\r\n")
        body = line[:-2] if crlf else line[:-1]
        after_crlf = crlf
        size += len(body) + 2
        if error is None:
            error = _check_line(body, len(line), size, max_size, max_line)
        if error is not None:
            lines.clear()
            continue
        lines.append((body[1:] if body.startswith(b".") else body) + b"\r\n")
    if error is not None:
        return DataResult(error=error)
    return DataResult(content=b"".join(lines))


def _check_line(
    body: bytes, length: int, size: int, max_size: int | None, max_line: int
) -> DataError | None:
    if max_size and size > max_size:
        return TOO_BIG
    if length > max_line:
        return LINE_TOO_LONG
    # A dot line here was not the terminator (a bare LF ended or preceded it): some
    # other server may read it as one, so the message is a smuggling attempt.
    if b"\r" in body or body == b".":
        return BARE_EOL
    return None
