"""PostgreSQL or NATS unreachable (issue 17, "Operations"). Without the database,
deliveries answer 451 4.3.0 so the MTA retries, IMAP commands that need the store
answer NO [UNAVAILABLE], and sessions stay up; once it is back, delivery works and
an idler hears of it. Without NATS, hints are lost; once it is back, every session
re-checks. Each is cut off by a TCP proxy in front of it: the machine's PostgreSQL
and NATS are shared and never restarted."""

from __future__ import annotations

import asyncio
import smtplib
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from cluster_node import Imap, Node

from conftest import PASSWORD, Cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "events"))

from nats_service import TcpProxy

T = TypeVar("T")
USER = "dave@example.org"
_SLOW_RECHECK = "[imap_settings]\nrecheck_interval = 600\n"


class ThreadedProxy:
    """``TcpProxy`` on a loop of its own thread, for blocking tests."""

    def __init__(self, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = TcpProxy(host, port)
        self.run(self.proxy.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.run(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _through(url: str, default_port: int) -> tuple[ThreadedProxy, str]:
    """A proxy to the server of ``url``, and ``url`` pointed at the proxy."""
    parts = urlsplit(url)
    proxy = ThreadedProxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    user = f"{parts.username}@" if parts.username else ""
    return proxy, parts._replace(netloc=f"{user}127.0.0.1:{proxy.proxy.port}").geturl()


@pytest.fixture
def proxies(cluster: Cluster) -> Iterator[tuple[ThreadedProxy, str, ThreadedProxy, str]]:
    pg, store = _through(cluster.store, 5432)
    nats, bus = _through(cluster.bus, 4222)
    try:
        # A short wait for a connection, so the outage shows in seconds, not ten.
        yield pg, store + "?pool_timeout=1", nats, bus
    finally:
        pg.close()
        nats.close()


def test_outages_give_4xx_and_sessions_survive_and_catch_up(
    cluster: Cluster, proxies: tuple[ThreadedProxy, str, ThreadedProxy, str]
) -> None:
    """PostgreSQL cut off, then NATS: see the module doc. After the NATS link is
    back, the idler hears of mail whose hint was lost at once (the bus's re-check
    hook), not at the periodic re-check, which is set far beyond the test's waits."""
    proxy, store, nats, bus = proxies
    cluster.add_users(USER)
    node = Node(cluster.root / "node", store, bus, config=_SLOW_RECHECK)
    cluster.nodes.append(node)
    node.start()
    idler = Imap(node.imap, USER, PASSWORD)
    idler.ok("SELECT INBOX")
    idler.idle()
    other = Imap(node.imap, USER, PASSWORD)
    other.ok("SELECT INBOX")
    node.deliver(USER, "before")
    assert idler.wait_for(rb"EXISTS") == b"* 1 EXISTS"

    proxy.run(proxy.proxy.cut())
    assert _refusal(node) == (451, "4.3.0")
    _, status = other.command("STATUS INBOX (MESSAGES)")
    assert status.split(b" ")[1:3] == [b"NO", b"[UNAVAILABLE]"], status
    newcomer = Imap(node.imap)
    _, login = newcomer.command(f"LOGIN {USER} {PASSWORD}")
    assert login.split(b" ")[1:3] == [b"NO", b"[UNAVAILABLE]"], login
    newcomer.close()

    proxy.run(proxy.proxy.restore())
    _deliver_when_back(node)  # the pool reconnects; no node restart
    assert idler.wait_for(rb"EXISTS") == b"* 2 EXISTS"

    nats.run(nats.proxy.cut())
    # Mail delivered meanwhile (by `pushmail deliver`, straight to the database and
    # NATS): its hint never reaches the node.
    cluster.cli("deliver", USER, stdin=b"Subject: unheard\r\n\r\nx\r\n")
    nats.run(nats.proxy.restore())
    assert idler.wait_for(rb"EXISTS", timeout=30) == b"* 3 EXISTS"
    idler.done()
    assert b"MESSAGES 3" in b" ".join(other.ok("STATUS INBOX (MESSAGES)"))
    idler.close()
    other.close()


def _refusal(node: Node) -> tuple[int, str]:
    """The reply that refused a delivery (at RCPT, or after DATA)."""
    try:
        node.deliver(USER, "during")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients[USER]
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error
    else:
        raise AssertionError("delivered while the database was unreachable")
    return code, text.decode().split(" ")[0]


def _deliver_when_back(node: Node) -> int:
    """Deliver as an MTA would, retrying on 4xx while the pool reconnects (it
    backs off between attempts); the number of refusals."""
    for tries in range(60):
        try:
            node.deliver(USER, "after")
            return tries
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException):
            time.sleep(0.5)
    raise AssertionError("no delivery 30 s after the database came back")
