"""Issue 15, item 8: the HTTP API listener does not hold slow or idle clients
forever (TLS handshake, header and body deadlines), caps connections in all and per
client address, and the settings page carries security headers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from pathlib import Path

import pytest
from web_harness import Api, api, basic, client_tls, fresh_seclog

from pushmail.web.app import STATIC
from pushmail.web.listener import Connections, ListenerLimits

SHORT = 0.5  # seconds: the deadlines these tests set; they only wait for a close


async def _tls_open(
    a: Api, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", a.port, ssl=client_tls(), local_addr=(source, 0)
    )


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (waits for the close, generously)."""
    try:
        return await asyncio.wait_for(reader.read(), 60)
    except (ConnectionResetError, ssl.SSLError):
        return b""


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _half_request(a: Api, source: str = "127.0.0.1") -> Conn:
    reader, writer = await _tls_open(a, source)
    writer.write(b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


def _close(*conns: Conn) -> None:
    for _, writer in conns:
        writer.transport.abort()


def test_deadlines_close_slow_clients(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="pushmail.security")
    fresh_seclog(monkeypatch)

    async def scenario() -> None:
        async with api(tmp_path, http_tls_handshake_timeout=SHORT, http_header_timeout=SHORT,
                       http_body_timeout=SHORT) as a:  # fmt: skip
            # Connected, never starts TLS.
            plain = await asyncio.open_connection("127.0.0.1", a.port)
            assert await _closed(plain[0]) == b""
            # TLS done, headers never finished (the slowloris).
            slow = await _half_request(a)
            assert await _closed(slow[0]) == b""
            # Headers done, the body promised and never sent in full: 408, then closed.
            reader, writer = await _tls_open(a)
            writer.write(b"PUT /api/rules HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                         b"Authorization: " + basic().encode() + b"\r\n\r\n{")  # fmt: skip
            answer = await _closed(reader)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            body = (reader, writer)
            # A kept-alive connection idle after its request is closed too.
            reader, writer = await _tls_open(a)
            writer.write(b"GET /api/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await _closed(reader)
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"openapi"' in answer
            _close(plain, slow, body, (reader, writer))
            # An oversized body (413) does not leave the connection without a deadline.
            too_big, writer2 = await _tls_open(a)
            head = (
                b"PUT /api/rules HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n"
                b"Content-Type: application/json\r\nAuthorization: " + basic().encode()
            )
            writer2.write(head + b"\r\n\r\n" + b" " * 70000)
            answer = await _closed(too_big)
            assert answer.startswith(b"HTTP/1.1 413 "), answer
            _close((too_big, writer2))
            # A prompt client is served as before.
            status, _, body = await a.request("GET", "/api/openapi.json")
            assert status == 200 and json.loads(body)["openapi"]

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]
    for stage in ("handshake", "headers", "body"):
        assert f"web-timeout service=web client=127.0.0.1 stage={stage}" in lines, lines


def test_connection_caps(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="pushmail.security")
    fresh_seclog(monkeypatch)

    async def scenario() -> None:
        async with api(tmp_path, http_max_per_address=3, http_max_connections=5) as a:
            held = [await _half_request(a) for _ in range(3)]
            # A fourth from the same address is closed before its TLS handshake.
            assert await _refused(a, "127.0.0.1")
            # Another address is still served, up to the global cap of 5.
            status, _ = await _request_from(a, "127.0.0.2")
            assert status == 200
            others = [await _half_request(a, "127.0.0.2"), await _half_request(a, "127.0.0.3")]
            # The global cap (5) is reached: a new client pushes out the connection that
            # has waited longest without a request (the first held one), and is served.
            status, _ = await _request_from(a, "127.0.0.4")
            assert status == 200
            assert await _closed(held[0][0]) == b""
            # Closing held connections frees their places.
            _close(*held, *others)
            for _ in range(100):
                status, _ = await _request_from(a, "127.0.0.1")
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            assert status == 200

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]
    assert (
        "web-connection-refused service=web client=127.0.0.1 reason=max-per-address limit=3"
        in lines
    )
    assert "web-connection-evicted service=web client=127.0.0.1 limit=5" in lines


def test_pushing_out_ones_own_connection_keeps_the_count(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with api(tmp_path, http_max_per_address=3, http_max_connections=2) as a:
            conns = [await _half_request(a) for _ in range(2)]
            # At the global cap: each new one pushes out this address's oldest, so the
            # address never holds more than 2, and its per-address count stays right.
            for _ in range(4):
                conns.append(await _half_request(a))  # raises if refused
            assert await _closed(conns[0][0]) == b"" and await _closed(conns[3][0]) == b""
            _close(*conns)

    asyncio.run(scenario())


def test_global_cap_refuses_when_nobody_waits() -> None:
    """Every connection busy with a request: nothing to push out, the new one is
    refused."""
    conns = Connections(ListenerLimits(max_connections=2, max_per_address=5))
    assert conns.admit("192.0.2.1") is None and conns.admit("192.0.2.2") is None
    assert conns.admit("192.0.2.3") == ("max-connections", 2)
    conns.release("192.0.2.1")
    assert conns.admit("192.0.2.3") is None
    assert conns.per_address == {"192.0.2.2": 1, "192.0.2.3": 1} and conns.total == 2


async def _refused(a: Api, source: str) -> bool:
    """Closed by the server before the TLS handshake could finish."""
    try:
        conn = await _tls_open(a, source)
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    closed = await _closed(conn[0]) == b""
    _close(conn)
    return closed


async def _request_from(a: Api, source: str) -> tuple[int, bytes]:
    try:
        reader, writer = await _tls_open(a, source)
    except (ConnectionError, ssl.SSLError, OSError):
        return 0, b""
    writer.write(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = await _closed(reader)
    _close((reader, writer))
    return (int(raw.split()[1]) if raw else 0), raw


def test_settings_page_security_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with api(tmp_path) as a:
            for path in ("/", "/app.js", "/app.css", "/sw.js", "/api/openapi.json"):
                status, headers, _ = await a.request("GET", path)
                assert status == 200, path
                csp = headers["content-security-policy"]
                directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
                assert directives["frame-ancestors"] == "'none'"
                assert directives["script-src"] == "'self'" and "unsafe" not in csp
                assert directives["object-src"] == "'none'"
                assert headers["x-content-type-options"] == "nosniff"
                assert headers["referrer-policy"] == "no-referrer"

    asyncio.run(scenario())
    page = (STATIC / "index.html").read_text()
    # No inline script or style for the CSP to block: every <script> has a src.
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", page))
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+\s*=", page)  # no inline event handlers


def test_per_address_cap_counts_ipv6_by_64() -> None:
    conns = Connections(ListenerLimits(max_connections=100, max_per_address=2))
    assert conns.admit("2001:db8:1:2::1") is None and conns.admit("2001:db8:1:2:ffff::9") is None
    assert conns.admit("2001:db8:1:2::77") == ("max-per-address", 2)  # same /64
    assert conns.admit("2001:db8:1:3::1") is None  # another /64
    assert conns.admit("::ffff:192.0.2.1") is None and conns.admit("192.0.2.1") is None
    assert conns.admit("192.0.2.1") == ("max-per-address", 2)  # mapped = the IPv4 address
    conns.release("2001:db8:1:2::1")
    assert conns.admit("2001:db8:1:2::5") is None
