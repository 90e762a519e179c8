"""True push beside IDLE, through a real ``pushmail serve``: one delivery wakes the
idling IMAP client *and* sends a Web Push alert; alerts queued at shutdown are sent
after a restart."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from push_endpoint import ThreadedEndpoint
from push_server import insecure_tls, lmtp_deliver, make_server, message, read_until

from pushmail.push.alert import ALERT_FIELDS
from pushmail.push.db_sqlite import SqlitePushDB


def test_delivery_gives_idle_exists_and_web_push_alert(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    srv = make_server(tmp_path, "hold = 0.0\n")
    srv.start()
    try:
        with ThreadedEndpoint() as ep, socket.create_connection(
            ("127.0.0.1", srv.imaps), timeout=10
        ) as raw, insecure_tls().wrap_socket(raw) as imap:  # fmt: skip
            status, device = srv.api(
                "POST",
                "/api/devices",
                {"kind": "webpush", "endpoint": ep.url(), "keys": ep.keys, "label": "phone"},
            )
            assert status == 201, device
            status, me = srv.api("GET", "/api/me")
            read_until(imap, b"\\* OK")
            imap.sendall(b"a LOGIN alice@example.org alice-secret\r\nb SELECT INBOX\r\n")
            read_until(imap, b"b OK")
            imap.sendall(b"c IDLE\r\n")
            read_until(imap, b"\\+ idling")
            t0 = time.time()
            assert lmtp_deliver(srv, message("Quarterly numbers")) == 250
            read_until(imap, rb"\* 1 EXISTS\r\n")
            t_exists = time.time()
            deadline = time.monotonic() + 30
            while not ep.received:
                assert time.monotonic() < deadline, "no alert arrived"
                time.sleep(0.005)
            [alert] = ep.received
            imap.sendall(b"DONE\r\nd LOGOUT\r\n")
            read_until(imap, b"d OK")
        assert ep.errors == []
        assert alert.payload is not None
        alert.payload.pop("_length")
        assert set(alert.payload) == ALERT_FIELDS
        assert alert.payload["account"] == me["account"] and alert.payload["new"] == 1
        figures = {
            "idle_exists_ms": round((t_exists - t0) * 1000, 1),
            "web_push_alert_ms": round((alert.at - t0) * 1000, 1),
        }
        record_property("latency", figures)
        print(json.dumps(figures))
    finally:
        srv.stop()


def test_queued_alerts_are_sent_after_a_restart(tmp_path: Path) -> None:
    srv = make_server(tmp_path, "hold = 0.0\n")
    srv.start()
    try:
        with ThreadedEndpoint() as endpoint:
            endpoint.script = [503]  # the first try fails; the retry waits 2 s
            status, _ = srv.api(
                "POST",
                "/api/devices",
                {"kind": "webhook", "endpoint": endpoint.url("/hook"), "secret": "s" * 20},
            )
            assert status == 201
            assert lmtp_deliver(srv, message("while the endpoint is down")) == 250
            deadline = time.monotonic() + 30
            while endpoint.attempts < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            srv.stop()
            db = SqlitePushDB(srv.data_dir / "push.sqlite3")
            try:
                assert db.queued() == 1  # kept across the shutdown
            finally:
                db.close()
            srv.start()
            deadline = time.monotonic() + 30
            while not endpoint.received:
                assert time.monotonic() < deadline, "the queued alert never came"
                time.sleep(0.01)
            assert endpoint.received[0].payload is not None
            assert endpoint.received[0].payload["new"] == 1
    finally:
        srv.stop()
