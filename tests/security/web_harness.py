"""The alerts API in-process as ``serve`` starts it (``start_push``, over TLS), with
the settings a security test chooses, and a raw HTTP client for requests a browser
or an attacker would make."""

from __future__ import annotations

import asyncio
import base64
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).parent.parent
for _sub in ("push", "e2e", "web"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))

from push_endpoint import PushEndpoint  # noqa: E402

from pushmail import seclog  # noqa: E402
from pushmail.auth.passwords import hash_password  # noqa: E402
from pushmail.config import load_config  # noqa: E402
from pushmail.events.unixsock import UnixSocketBus  # noqa: E402
from pushmail.server.push_service import PushService, start_push  # noqa: E402
from pushmail.store.sqlite import SqliteStore  # noqa: E402
from pushmail.threads.store_runner import StoreRunner  # noqa: E402
from pushmail.transport.tls import ensure_certificate, server_context  # noqa: E402

ALICE = ("alice@example.org", "alice-pw")


def fresh_seclog(monkeypatch: Any) -> None:
    """A security log of the test's own: the process's shared one is rate-limited
    per (event, client), and earlier tests from 127.0.0.1 may have spent it."""
    monkeypatch.setattr(seclog, "_default", seclog.SecurityLog())


def basic(who: tuple[str, str] = ALICE) -> str:
    return "Basic " + base64.b64encode(":".join(who).encode()).decode()


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Api:
    service: PushService
    endpoint: PushEndpoint
    tls: bool

    @property
    def port(self) -> int:
        assert self.service.http_port is not None
        return self.service.http_port

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP/1.1 request on a fresh connection; (status, headers, body)."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=client_tls() if self.tls else None
        )
        head = {"Host": f"127.0.0.1:{self.port}", "Connection": "close",
                "Content-Length": str(len(body)), **(headers or {})}  # fmt: skip
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        raw = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        status_line, _, rest = raw.partition(b"\r\n")
        header_block, _, payload = rest.partition(b"\r\n\r\n")
        got = {}
        for line in header_block.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), got, payload


@asynccontextmanager
async def api(tmp_path: Path, tls: bool = True, **settings: Any) -> AsyncIterator[Api]:
    """The API with ``push.<key>`` settings, alice as a user, and a local endpoint."""
    overrides: dict[str, Any] = {"data_dir": tmp_path, "push.http": "127.0.0.1:0",
                                 "push.hold": 0.0, "push.http_tls": tls}  # fmt: skip
    overrides.update({f"push.{k}": v for k, v in settings.items()})
    config = load_config(None, overrides)
    runner = StoreRunner(lambda: SqliteStore(config.db_path))
    h = hash_password(ALICE[1])
    await runner.run(lambda st: st.create_user(ALICE[0], h))
    bus = UnixSocketBus(config.events_dir)
    bus.start(asyncio.get_running_loop())
    context = server_context(*ensure_certificate(tmp_path, "localhost")) if tls else None
    service = await start_push(config, runner, bus, context)
    ep = PushEndpoint()
    await ep.start()
    try:
        yield Api(service, ep, tls)
    finally:
        await ep.stop()
        await service.aclose()
        bus.close()
        runner.close()
