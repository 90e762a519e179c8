"""A burst of LMTP deliveries over several concurrent connections, timing every reply.

Why not ``smtplib.LMTP``: it reads one reply after DATA, but LMTP (RFC 2033) answers
DATA once *per accepted recipient*, and a broadcast wants each of those replies timed:
the moment a recipient's ``250`` is read is when the server said "this copy is
durable", the start of that recipient's delivery -> EXISTS latency. Also, one blocking
connection would measure the client's round trips, not the server's throughput.

The recipients are split round-robin over ``connections``; each connection sends its
share as transactions of ``rcpts_per_message`` recipients (1 = one message each).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from idle_latency import DOMAIN, Delivery, message_bytes


@dataclass(frozen=True, slots=True)
class BurstResult:
    """The timed 250s (in reply order per connection), failures, and wall time."""

    deliveries: list[Delivery]
    errors: list[str]
    seconds: float


class LmtpError(Exception):
    """The server answered something other than the expected reply class."""


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """Read one (possibly multi-line) reply; return its code and last line."""
    while True:
        line = (await reader.readline()).decode("ascii", "replace")
        if not line:
            raise ConnectionError("LMTP server closed the connection")
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), line.rstrip()


async def _expect(reader: asyncio.StreamReader, first_digit: str) -> None:
    code, line = await _reply(reader)
    if not str(code).startswith(first_digit):
        raise LmtpError(line[:200])


def _dot_stuffed(raw: bytes) -> bytes:
    """The DATA payload: leading dots doubled, terminated by CRLF.CRLF."""
    body = raw.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


async def _one_connection(
    port: int, recipients: list[str], per_message: int, first_index: int
) -> tuple[list[Delivery], list[str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    deliveries: list[Delivery] = []
    errors: list[str] = []
    try:
        await _expect(reader, "2")
        writer.write(b"LHLO bench.test\r\n")
        await _expect(reader, "2")
        for start in range(0, len(recipients), per_message):
            batch = recipients[start : start + per_message]
            writer.write(f"MAIL FROM:<bench@{DOMAIN}>\r\n".encode())
            await _expect(reader, "2")
            accepted = []
            for rcpt in batch:
                writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
                code, line = await _reply(reader)
                if code // 100 == 2:
                    accepted.append(rcpt)
                else:
                    errors.append(f"RCPT {rcpt}: {line[:120]}")
            if not accepted:
                writer.write(b"RSET\r\n")
                await _expect(reader, "2")
                continue
            writer.write(b"DATA\r\n")
            await _expect(reader, "3")
            raw = message_bytes(first_index + start, batch[0] if len(batch) == 1 else "many")
            writer.write(_dot_stuffed(raw))
            for rcpt in accepted:  # one reply per accepted recipient, in RCPT order
                code, line = await _reply(reader)
                if code // 100 == 2:
                    deliveries.append(Delivery(rcpt, time.monotonic_ns()))
                else:
                    errors.append(f"DATA {rcpt}: {line[:120]}")
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    return deliveries, errors


async def _burst(
    port: int, recipients: list[str], connections: int, per_message: int
) -> BurstResult:
    connections = max(1, min(connections, len(recipients)))
    shares = [recipients[i::connections] for i in range(connections)]
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            _one_connection(port, share, max(1, per_message), i * len(recipients))
            for i, share in enumerate(shares)
        ),
        return_exceptions=True,
    )
    seconds = time.monotonic() - started
    deliveries: list[Delivery] = []
    errors: list[str] = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(f"connection failed: {type(result).__name__}: {result}"[:200])
        else:
            deliveries.extend(result[0])
            errors.extend(result[1])
    return BurstResult(deliveries, errors, seconds)


def burst(port: int, recipients: list[str], connections: int, per_message: int) -> BurstResult:
    """Deliver one message to each of *recipients* as fast as the server takes them."""
    return asyncio.run(_burst(port, recipients, connections, per_message))
