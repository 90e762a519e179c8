"""The watcher learns the longest keepalive a NAT tolerates (issue 20).

Unit tests drive ``KeepaliveLearner`` against a simulated NAT; the end-to-end test runs
``pushmail watch`` through the fault proxy playing a NAT that forgets a mapping idle
for T seconds, and checks that the watcher settles below T and loses no message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from conftest import ConfiguredServer, Watch, deliver, make_server
from pushmail.client.heartbeat import Heartbeat
from pushmail.client.keepalive_learn import (
    KeepaliveLearner,
    LearningBeat,
    default_gateway,
    make_beat,
    settle_interval,
)
from pushmail.client.settings import WatchConfigError, load_watch_config


def _run(k: KeepaliveLearner, nat: float, renewals: int) -> int:
    """Renew ``renewals`` times behind a NAT of timeout ``nat``; return the deaths."""
    deaths = 0
    for _ in range(renewals):
        interval = k.interval()
        if interval >= nat:
            k.died()
            deaths += 1
        else:
            k.answered(interval)
    return deaths


@pytest.mark.parametrize("nat", [90.0, 120.0, 300.0, 900.0, 1000.0])
def test_settles_below_the_nat_timeout_and_close_to_it(nat: float) -> None:
    k = KeepaliveLearner(60.0, 1740.0, network=lambda: "net")
    deaths = _run(k, nat, 60)
    assert k.interval() < nat
    assert k.interval() >= nat * 0.75, k.changes
    assert deaths <= 5, k.changes  # a binary search, not a walk
    assert _run(k, nat, 100) == 0  # and it stays there


def test_a_lenient_nat_reaches_the_upper_bound_without_a_death() -> None:
    k = KeepaliveLearner(60.0, 1740.0, network=lambda: "net")
    assert _run(k, 3600.0, 40) == 0
    assert k.interval() == 1740.0


def test_a_nat_below_the_lower_bound_keeps_the_lower_bound() -> None:
    k = KeepaliveLearner(60.0, 1740.0, network=lambda: "net")
    _run(k, 30.0, 20)
    assert k.interval() == 60.0  # never below keepalive_min


def test_a_death_at_the_known_good_interval_steps_back() -> None:
    k = KeepaliveLearner(60.0, 1740.0, network=lambda: "net")
    _run(k, 1000.0, 60)
    settled = k.interval()
    k.died()  # the network got worse (or the NAT was replaced)
    assert k.interval() <= settled / 2 + 1e-9
    _run(k, 400.0, 60)
    assert 300.0 <= k.interval() < 400.0


def test_early_renewals_prove_nothing() -> None:
    k = KeepaliveLearner(60.0, 1740.0, network=lambda: "net")
    for _ in range(10):
        k.answered(5.0)  # DONE for news after 5 s of idling
    assert k.interval() == 60.0


def test_a_forced_probe_is_not_taken_for_a_long_survival() -> None:
    """A network change makes the heartbeat probe every connection at once (its
    ``started`` is moved far back); the answer must not count as a full interval."""
    k = KeepaliveLearner(60.0, 1740.0, network=lambda: "net")
    hb = Heartbeat()
    made: list[LearningBeat] = []
    beat = make_beat(k, lambda: made[0].renewing(), lambda _r: None, lambda: 0.0, 300.0, 30.0, None)
    assert isinstance(beat, LearningBeat)
    made.append(beat)
    hb.add(beat)
    for _ in range(6):
        beat.restart()
        hb.probe_all()
        hb.tick(time.monotonic())  # renews at once
        assert beat.renewal_waited is not None and beat.renewal_waited < 1.0
        beat.answered()
    assert k.interval() == 60.0


def test_the_interval_is_remembered_per_network_across_restarts(tmp_path: Path) -> None:
    net = ["home"]
    path = tmp_path / "keepalive-main.json"
    k = KeepaliveLearner(60.0, 1740.0, path, network=lambda: net[0])
    _run(k, 300.0, 40)
    home = k.interval()
    net[0] = "mobile"
    assert k.interval() == 60.0  # a network it has not seen: start safe
    _run(k, 120.0, 40)
    again = KeepaliveLearner(60.0, 1740.0, path, network=lambda: net[0])
    assert again.interval() == k.interval() < 120.0
    net[0] = "home"
    assert again.interval() == home
    path.write_text("{not json")
    assert KeepaliveLearner(60.0, 1740.0, path, network=lambda: "x").interval() == 60.0


def test_default_gateway_reads_the_route_table(tmp_path: Path) -> None:
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway\tFlags\n"
        "eth0\t0010A8C0\t00000000\t0001\n"
        "wlan0\t00000000\t0101A8C0\t0003\n"
    )
    assert default_gateway(route) == "wlan0:0101A8C0"
    assert default_gateway(tmp_path / "missing") == "unknown"


def test_settle_interval_for_the_model() -> None:
    assert 250.0 <= settle_interval(300.0) < 300.0
    assert settle_interval(7200.0) == 1740.0


def test_bounds_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "watch.toml"
    cfg.write_text(
        '[[account]]\nname = "a"\nhost = "h"\nusername = "u"\n'
        "keepalive_min = 600\nkeepalive_max = 60\n"
    )
    with pytest.raises(WatchConfigError, match="keepalive_min"):
        load_watch_config(cfg)


# ------------------------------------------------------------------ through the proxy

NAT = 1.5  # seconds of silence after which the "NAT" forgets the connection


@pytest.fixture
def quiet_server(tmp_path: Path) -> ConfiguredServer:
    # No server keepalive: it would refresh the mapping and hide the NAT.
    srv = make_server(tmp_path, "[imap_settings]\nidle_keepalive = 0\n")
    srv.start()
    try:
        yield srv  # type: ignore[misc]
    finally:
        srv.stop()


@pytest.mark.parametrize("nat_reset", [False, True], ids=["silent-nat", "resetting-nat"])
def test_watch_learns_a_keepalive_below_the_nat_timeout_and_loses_no_mail(
    quiet_server: ConfiguredServer, watch_factory: Callable[..., Watch], nat_reset: bool
) -> None:
    proxy = FaultProxy(quiet_server.imap)
    proxy.nat_timeout = NAT
    proxy.nat_reset = nat_reset
    try:
        account = {"keepalive_learn": True, "keepalive_min": 0.25, "keepalive_max": 6.0,
                   "response_timeout": 0.8, "mode": "idle"}  # fmt: skip
        w = watch_factory(proxy.port, account=account)
        w.start()
        deliver(quiet_server, "while-learning")
        w.wait_subjects("while-learning")

        def settled(evs: list[dict[str, object]]) -> bool:
            return any(e["event"] == "keepalive_interval" and e["why"] == "settled" for e in evs)

        w.wait_for(settled)
        lost = [e for e in w.events() if e["event"] in ("dead", "disconnected")]
        assert lost, "the learner never tried an interval the NAT refused"
        deliver(quiet_server, "after-learning")
        w.wait_subjects("after-learning")
        learned = [e for e in w.events() if e["event"] == "keepalive_interval"]
        final = float(learned[-1]["seconds"])  # type: ignore[arg-type]
        print(f"learned {final:.2f} s behind a {NAT} s NAT; steps: {learned}")
        assert final < NAT
        assert final >= NAT / 2
        got = w.subjects()
        assert sorted(got) == ["after-learning", "while-learning"], got
        stored = json.loads((w.dir / "state" / "keepalive-main.json").read_text())
        (net,) = stored.values()
        assert net["settled"] and net["interval"] == pytest.approx(final, abs=0.01)
    finally:
        proxy.close()
