"""A real ``pushmail serve`` with the push HTTP API on, plus small clients for it:
IMAP IDLE over TLS, LMTP delivery, and the HTTP API with Basic auth."""

from __future__ import annotations

import base64
import email.policy
import json
import re
import select
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from e2e_server import Server, free_port


def insecure_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class PushServer(Server):
    """``Server`` with the HTTP API on a free port and ``[push]`` settings."""

    http_port: int = 0
    push_settings: str = ""

    def args(self) -> list[str]:
        config = self.data_dir.parent / "pushmail.toml"
        # The test endpoints listen on loopback, which alerts may reach only when allowed.
        settings = "[push]\nallow_http_endpoints = true\nallow_private_endpoints = true\n"
        config.write_text(settings + self.push_settings)
        return [*super().args(), "--config", str(config)]

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, (self.data_dir / "server.log").read_text()
                time.sleep(0.05)

    def api(self, method: str, path: str, body: Any = None, user: str = "alice@example.org",
            password: str = "alice-secret") -> tuple[int, Any]:  # fmt: skip
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(
            f"https://127.0.0.1:{self.http_port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=insecure_tls(), timeout=20) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read() or b"null")


def make_server(tmp_path: Any, push_settings: str = "") -> PushServer:
    port = free_port()
    ports = (free_port() for _ in range(5))
    srv = PushServer(tmp_path / "data", *ports, http=f"127.0.0.1:{port}", http_port=port,
                     push_settings=push_settings)  # fmt: skip
    srv.data_dir.mkdir()
    srv.add_user("alice@example.org", "alice-secret")
    return srv


def message(subject: str, sender: str = "boss@example.com") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender <{sender}>"
    msg["To"] = "alice@example.org"
    msg["Subject"] = subject
    msg.set_content("private body\n")
    return msg.as_bytes(policy=email.policy.SMTP)


def lmtp_deliver(server: Server, raw: bytes) -> int:
    with smtplib.LMTP("127.0.0.1", server.lmtp, timeout=10) as lm:
        lm.ehlo_or_helo_if_needed()
        lm.mail("sender@example.com")
        lm.rcpt("alice@example.org")
        return int(lm.data(raw)[0])


def read_until(sock: socket.socket, pattern: bytes, timeout: float = 20.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {pattern!r}; got {buf!r}"
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            select.select([sock], [], [], left)
        chunk = sock.recv(65536)
        assert chunk, f"connection closed; got {buf!r}"
        buf += chunk
    return buf
