"""The test bench of ``push_cost.py``: pushmail in its namespace, the phone outside.

* pushmail serves IMAPS on the namespace's veth address (what the phone reaches),
  plain IMAP on the namespace's loopback (only for the ticket-issuing TLS front,
  ``tls_terminator.py``), and LMTP on the veth address (mail comes in there).
* Three HTTPS receivers in the root namespace stand for a Web Push service, a webhook
  and an ntfy server; pushmail's alerts cross the veth to reach them, so they are
  captured like the phone's traffic. pushmail verifies their certificate through
  ``SSL_CERT_FILE`` (one self-signed certificate for the phone's address). Each
  receiver records what it got; the Web Push body is decrypted with the subscription's
  private key to show it is the real RFC 8291 payload.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cost_certs import make_chain
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from wire_capture import Capture, NetnsPair
from wire_client import WireClient, tls_context

from pushmail.transport.tls import CERT_NAME, KEY_NAME, ensure_certificate

USER = "phone@cost.test"
PASSWORD = "cost-bench-pw"
IMAPS, IMAP_LOCAL, LMTP, FRONT = 993, 1143, 24, 994
RECEIVERS = {"webpush": 8441, "webhook": 8442, "ntfy": 8443}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Received:
    kind: str
    path: str
    headers: dict[str, str]
    body: bytes
    plaintext: bytes | None = None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length", "0")), 1 << 16)
        body = self.rfile.read(length)
        rig: Receiver = self.server.rig  # type: ignore[attr-defined]
        rig.record(self.path, dict(self.headers.items()), body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Receiver:
    """One HTTPS endpoint on the phone's side of the link."""

    def __init__(self, kind: str, host: str, port: int, cert: Path, key: Path) -> None:
        self.kind = kind
        self.got: list[Received] = []
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.rig = self  # type: ignore[attr-defined]
        self.port = port
        self.url = f"https://{host}:{port}/{kind}/device1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64(raw)

    def record(self, path: str, headers: dict[str, str], body: bytes) -> None:
        plain = None
        if self.kind == "webpush":
            import http_ece  # type: ignore[import-untyped]

            plain = http_ece.decrypt(
                body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
            )
        self.got.append(Received(self.kind, path, headers, body, plain))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Rig:
    workdir: Path
    keepalive: float = 5.0  # the server's "Still here" interval for this run
    chain: bool = True  # a CA-shaped chain (cost_certs.py) instead of the self-signed default
    cert_sizes: dict[str, int] = field(default_factory=dict)
    pair: NetnsPair = field(default_factory=NetnsPair)
    capture: Capture | None = None
    server: subprocess.Popen[bytes] | None = None
    front: subprocess.Popen[bytes] | None = None
    receivers: dict[str, Receiver] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def pm(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pushmail", *args, "--data-dir", str(self.data),
                "--config", str(self.workdir / "pushmail.toml")]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pushmail {args[:2]}: {done.stderr.strip()[-400:]}")
        return done

    def start(self) -> None:
        self.pair.up()
        self.capture = Capture(self.pair.host_if)
        self.data.mkdir(parents=True)
        config = self.workdir / "pushmail.toml"
        tls = ""
        if self.chain:
            cert, key, self.cert_sizes = make_chain(self.workdir / "chain", self.pair.server_ip)
            tls = f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
        config.write_text(
            f"{tls}[imap_settings]\nidle_keepalive = {self.keepalive}\n"
            '[push]\nhttp = "off"\nhold = 0.2\nmin_interval = 0\n'
            # The receivers stand on the link's private addresses.
            "allow_private_endpoints = true\n"
        )
        passwd = self.workdir / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.pm("user", "import", str(passwd))
        rcert, rkey = ensure_certificate(self.workdir / "receiver", self.pair.phone_ip)
        for kind, port in RECEIVERS.items():
            self.receivers[kind] = Receiver(kind, self.pair.phone_ip, port, rcert, rkey)
        w = self.receivers["webpush"]
        self.pm("alerts", "add", USER, "--kind", "webpush", "--endpoint", w.url,
                "--p256dh", w.p256dh, "--auth", _b64(w.auth))  # fmt: skip
        hook = self.receivers["webhook"].url
        self.pm("alerts", "add", USER, "--kind", "webhook", "--endpoint", hook,
                "--secret", "s3cret-for-the-hmac-of-webhooks")  # fmt: skip
        self.pm("alerts", "add", USER, "--kind", "ntfy", "--endpoint", self.receivers["ntfy"].url)
        ip = self.pair.server_ip
        argv = [sys.executable, "-m", "pushmail", "serve", "--data-dir", str(self.data),
                "--config", str(config), "--imaps", f"{ip}:{IMAPS}",
                "--imap", f"127.0.0.1:{IMAP_LOCAL}", "--lmtp", f"{ip}:{LMTP}",
                "--smtp", "off", "--submission", "off"]  # fmt: skip
        env = {**os.environ, "SSL_CERT_FILE": str(rcert)}
        log = (self.workdir / "server.log").open("ab")
        self.server = subprocess.Popen(
            self.pair.command(argv), stdout=log, stderr=log, env=env, start_new_session=True
        )
        self._wait_tls(IMAPS)
        if self.chain:
            cert, key = (
                self.workdir / "chain" / "chain.pem",
                self.workdir / "chain" / "leaf-key.pem",
            )
        else:
            cert, key = self.data / CERT_NAME, self.data / KEY_NAME
        here = Path(__file__).with_name("tls_terminator.py")
        front = [sys.executable, str(here), ip, str(FRONT), str(cert), str(key), str(IMAP_LOCAL)]
        self.front = subprocess.Popen(
            self.pair.command(front), stdout=subprocess.PIPE, stderr=log, start_new_session=True
        )
        assert self.front.stdout is not None
        self.front.stdout.readline()
        self._wait_tls(FRONT)

    def _wait_tls(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f"server exited: {self.server.returncode}")
            try:
                WireClient(self.pair.server_ip, port, tls_context()).close()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"no TLS greeting on {port}")

    def deliver(self, body: bytes) -> None:
        with smtplib.LMTP(self.pair.server_ip, LMTP, timeout=30) as lmtp:
            lmtp.sendmail("sender@elsewhere.test", [USER], body)

    def stop(self) -> None:
        for proc in (self.front, self.server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for r in self.receivers.values():
            r.close()
        if self.capture is not None:
            self.capture.close()
        self.pair.down()


@contextlib.contextmanager
def running_rig(keepalive: float = 5.0, chain: bool = True, keep: Path | None = None) -> Any:
    with tempfile.TemporaryDirectory(prefix="pushcost-") as tmp:
        rig = Rig(Path(tmp), keepalive, chain)
        try:
            rig.start()
            yield rig
        finally:
            rig.stop()
            if keep is not None:
                log = Path(tmp) / "server.log"
                if log.exists():
                    keep.write_bytes(log.read_bytes())


def message(size: int, index: int) -> bytes:
    """A message of about ``size`` bytes: headers and base64 lines (an attachment's
    shape, so COMPRESS cannot shrink it much more than it would a real one)."""
    head = (
        f"From: Sender <sender@elsewhere.test>\r\nTo: <{USER}>\r\n"
        f"Subject: cost benchmark {index}\r\nMessage-ID: <cost-{index}-{time.time_ns()}@x>\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    ).encode()
    lines = []
    left = max(0, size - len(head))
    while left > 0:
        line = base64.b64encode(os.urandom(57))[: max(1, min(76, left - 2))] + b"\r\n"
        lines.append(line)
        left -= len(line)
    return head + b"".join(lines)


def dump(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)
