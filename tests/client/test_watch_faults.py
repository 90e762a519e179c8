"""Fault injection: the watcher against pushmail through a proxy that black-holes, resets
and slows the link, across server restarts, a server that drops idlers, and a restart
of the watcher itself. After each fault, mail delivered during it is announced exactly
once and no hook runs twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from faultproxy import FaultProxy

from conftest import ConfiguredServer, Watch, deliver, make_server


def _once(w: Watch, *subjects: str) -> None:
    got = w.subjects()
    for s in subjects:
        assert got.count(s) == 1, (s, got)
    assert len(got) == len(set(got)), got


def test_blackholed_connection_is_detected_and_nothing_is_lost(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(proxy.port)
    w.start()
    deliver(server, "before")
    w.wait_subjects("before")
    proxy.blackhole_existing()  # like an expired NAT mapping: no FIN, no RST
    deliver(server, "during")
    w.wait_for(lambda evs: any(e["event"] == "dead" for e in evs))
    w.wait_subjects("during")
    deliver(server, "after")
    w.wait_subjects("after")
    _once(w, "before", "during", "after")


def test_total_blackout_then_recovery(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(proxy.port)
    w.start()
    proxy.set_mode("blackhole")  # existing and new connections: greeting never arrives
    deliver(server, "during")
    w.wait_for(lambda evs: sum(e["event"] == "disconnected" for e in evs) >= 2)
    assert "during" not in w.subjects()
    proxy.set_mode("pass")
    w.wait_subjects("during")
    _once(w, "during")


def test_reset_connection_reconnects(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(proxy.port)
    w.start()
    proxy.reset_all()
    deliver(server, "after-reset")
    w.wait_subjects("after-reset")
    assert w.count("disconnected") >= 1
    _once(w, "after-reset")


def test_slow_link(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(proxy.port)
    w.start()
    proxy.set_mode("slow", delay=0.3)
    for i in range(3):
        deliver(server, f"slow-{i}")
    w.wait_subjects("slow-0", "slow-1", "slow-2")
    _once(w, "slow-0", "slow-1", "slow-2")


def test_server_restart_with_mail_delivered_while_down(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(server.imap)
    w.start()
    deliver(server, "before")
    w.wait_subjects("before")
    server.stop()
    deliver(server, "while-down")  # straight into the store
    w.wait_for(lambda evs: any(e["event"] == "disconnected" for e in evs))
    server.start()
    w.wait_subjects("while-down")
    _once(w, "before", "while-down")


def test_server_that_drops_idlers(tmp_path: Path, watch_factory: Callable[..., Watch]) -> None:
    srv = make_server(tmp_path, "[imap_settings]\nautologout = 2.0\nidle_keepalive = 0\n")
    srv.start()
    try:
        # The client renews far later than the server's autologout: the server ends it.
        w = watch_factory(srv.imap, account={"idle_renew": 60.0})
        w.start()
        w.wait_for(lambda evs: any(e["event"] == "disconnected" for e in evs))
        deliver(srv, "after-drop")
        w.wait_subjects("after-drop")
        _once(w, "after-drop")
    finally:
        srv.stop()


def test_silence_beyond_server_keepalive_means_dead(
    server: ConfiguredServer, proxy: FaultProxy, watch_factory: Callable[..., Watch]
) -> None:
    # No renewals in this test's span: only the missing "* OK Still here" can tell.
    w = watch_factory(
        proxy.port, account={"idle_renew": 600.0, "server_keepalive": 5.0, "grace": 3.0}
    )
    w.start()
    proxy.blackhole_existing()
    deliver(server, "during")
    w.wait_for(lambda evs: any(e["event"] == "dead" and "silent" in e["reason"] for e in evs))
    w.wait_subjects("during")
    _once(w, "during")


def test_client_restart_never_repeats_a_hook(
    server: ConfiguredServer, watch_factory: Callable[..., Watch], tmp_path: Path
) -> None:
    hook_log = tmp_path / "hook.jsonl"
    hook = {"type": "command", "command": f"cat >> {hook_log}; echo >> {hook_log}"}
    w = watch_factory(server.imap, hook=[hook])
    w.start()
    deliver(server, "one")
    w.wait_subjects("one")
    assert w.stop() == 0
    deliver(server, "two")  # while the watcher is not running
    deliver(server, "three")
    w.start()
    w.wait_subjects("two", "three")
    assert w.stop() == 0
    w.start()  # a second restart with nothing new
    deliver(server, "four")
    w.wait_subjects("four")
    assert w.stop() == 0
    _once(w, "one", "two", "three", "four")
    ran = [json.loads(line) for line in hook_log.read_text().splitlines() if line.strip()]
    assert sorted(r["subject"] for r in ran) == ["four", "one", "three", "two"]
    assert len({(r["uidvalidity"], r["uid"]) for r in ran}) == 4
