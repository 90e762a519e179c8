"""Trace headers: shape per RFC 5321 §4.4, and peer input cannot inject headers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email import message_from_bytes

import pytest

from pushmail.smtp.trace import TraceInfo, trace_headers, with_protocol

WHEN = datetime(2025, 11, 27, 21, 30, 5, tzinfo=timezone(timedelta(hours=1)))


def info(**kw: object) -> TraceInfo:
    base: dict[str, object] = {
        "helo": "client.example",
        "peer_ip": "192.0.2.7",
        "by_host": "mx.example.org",
        "protocol": "ESMTPS",
        "queue_id": "abc123",
        "sender": "a@example.net",
        "recipients": ("b@example.org",),
        "when": WHEN,
    }
    base.update(kw)
    return TraceInfo(**base)  # type: ignore[arg-type]


def test_single_recipient() -> None:
    assert trace_headers(info()) == (
        b"Return-Path: <a@example.net>\r\n"
        b"Received: from client.example ([192.0.2.7])\r\n"
        b"\tby mx.example.org (pushmail) with ESMTPS id abc123\r\n"
        b"\tfor <b@example.org>;\r\n"
        b"\tThu, 27 Nov 2025 21:30:05 +0100\r\n"
    )


def test_several_recipients_are_not_listed_and_ipv6_literal() -> None:
    out = trace_headers(info(recipients=("b@x", "c@x"), peer_ip="2001:db8::1", sender=""))
    assert b"for <" not in out
    assert b"Return-Path: <>\r\n" in out
    assert b"([IPv6:2001:db8::1])" in out
    assert b"id abc123;\r\n\tThu" in out


def test_unix_socket_peer() -> None:
    assert b"from client.example (unix socket)" in trace_headers(info(peer_ip=None))


@pytest.mark.parametrize(
    ("helo", "sender"),
    [
        ("evil\r\nX-Injected: 1", "a@b"),
        ("x", "a@b>\r\nX-Injected: 1"),
        ("x (comment) y", 'ü"@b'),
    ],
)
def test_peer_input_cannot_add_headers(helo: str, sender: str) -> None:
    out = trace_headers(info(helo=helo, sender=sender))
    out.decode("ascii")
    msg = message_from_bytes(out + b"\r\nbody")
    assert sorted(msg.keys()) == ["Received", "Return-Path"]
    assert out.count(b"\r\n") == 5 and b"\n" not in out.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((False, False, False, False), "SMTP"),
        ((False, True, False, False), "ESMTP"),
        ((False, True, True, False), "ESMTPS"),
        ((False, True, True, True), "ESMTPSA"),
        ((False, True, False, True), "ESMTPA"),
        ((True, True, False, False), "LMTP"),
        ((True, True, True, True), "LMTPSA"),
    ],
)
def test_with_protocol(args: tuple[bool, bool, bool, bool], expected: str) -> None:
    assert with_protocol(*args) == expected
