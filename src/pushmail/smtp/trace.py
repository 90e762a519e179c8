"""Trace headers prepended at final delivery (RFC 5321 §4.4).

The delivering server adds ``Return-Path`` (the envelope sender, so replies and
bounces can find it after the envelope is gone) and a ``Received`` line saying who
handed the message over, how, and when. Both are built from peer input (the HELO
name, the sender), so every peer-supplied piece is reduced to characters that cannot
break out of the header: no CR, LF or anything outside printable ASCII.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

__all__ = ["TraceInfo", "trace_headers", "with_protocol"]

_UNSAFE_HELO = re.compile(r"[^A-Za-z0-9.\-:\[\]_]")
_UNSAFE_ADDR = re.compile(r"[^\x21-\x7e]")


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What the Received line records about one transaction."""

    helo: str  # the name the client gave in HELO/EHLO/LHLO
    peer_ip: str | None  # None for a Unix socket
    by_host: str  # our hostname
    protocol: str  # RFC 3848 "with" keyword: ESMTPS, LMTP, ESMTPSA ...
    queue_id: str
    sender: str  # "" for the null reverse path
    recipients: tuple[str, ...]
    when: datetime


def with_protocol(lmtp: bool, extended: bool, tls: bool, authenticated: bool) -> str:
    """The ``with`` keyword of RFC 3848: SMTP, ESMTP[S][A], LMTP[S][A]."""
    if lmtp:
        base = "LMTP"
    elif extended:
        base = "ESMTP"
    else:
        return "SMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def trace_headers(info: TraceInfo) -> bytes:
    """``Return-Path`` and ``Received`` as CRLF-terminated header lines.

    ``for <addr>`` is written only for a single recipient, so one recipient's copy
    never lists the others (the Bcc privacy concern in RFC 5321 §7.2).
    """
    helo = _UNSAFE_HELO.sub("?", info.helo)[:255] or "unknown"
    peer = f"[{_address_literal(info.peer_ip)}]" if info.peer_ip else "unix socket"
    lines = [
        f"Return-Path: <{_safe_addr(info.sender)}>",
        f"Received: from {helo} ({peer})",
        f"\tby {info.by_host} (pushmail) with {info.protocol} id {info.queue_id}",
    ]
    if len(info.recipients) == 1:
        lines.append(f"\tfor <{_safe_addr(info.recipients[0])}>;")
    else:
        lines[-1] += ";"
    lines.append("\t" + format_datetime(info.when))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _safe_addr(address: str) -> str:
    return _UNSAFE_ADDR.sub("?", address)[:320]


def _address_literal(ip: str) -> str:
    return f"IPv6:{ip}" if ":" in ip else ip
