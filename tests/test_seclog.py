"""The security log: one stable, escaped line per event, rate-limited per client and
per process so that an attacker cannot fill the disk."""

from __future__ import annotations

import logging

import pytest

from pushmail import seclog


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def writer(caplog: pytest.LogCaptureFixture) -> tuple[seclog.SecurityLog, _Clock]:
    caplog.set_level(logging.INFO, logger="pushmail.security")
    clock = _Clock()
    return seclog.SecurityLog(clock=clock), clock


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pushmail.security"]


def test_line_format(
    writer: tuple[seclog.SecurityLog, _Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, _ = writer
    assert log.report("auth-failed", "imap", "203.0.113.7", user="alice@example.org")
    assert log.report("limit-hit", "imap", "::1", limit="max_connections_per_ip", value=5)
    assert _lines(caplog) == [
        "auth-failed service=imap client=203.0.113.7 user=alice@example.org",
        "limit-hit service=imap client=::1 limit=max_connections_per_ip value=5",
    ]


def test_peer_values_cannot_forge_or_split_a_line(
    writer: tuple[seclog.SecurityLog, _Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, _ = writer
    log.report("auth-failed", "imap", "10.0.0.1", user="x client=1.2.3.4\nauth-failed é%")
    (line,) = _lines(caplog)
    assert line == (
        "auth-failed service=imap client=10.0.0.1 "
        "user=x%20client%3D1.2.3.4%0Aauth-failed%20%C3%A9%25"
    )
    log.report("auth-failed", "imap", "10.0.0.2", user="a" * 1000)
    assert _lines(caplog)[-1].endswith("user=" + "a" * 128)
    log.report("auth-failed", "imap", "10.0.0.3", user="")
    assert _lines(caplog)[-1].endswith('user=""')


def test_per_client_burst_then_trickle_and_summary(
    writer: tuple[seclog.SecurityLog, _Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, clock = writer
    written = sum(log.report("auth-failed", "imap", "198.51.100.1") for _ in range(100))
    assert written == seclog._PER_CLIENT_BURST
    # another client and another event are not held back by the first one's flood
    assert log.report("auth-failed", "imap", "198.51.100.2")
    assert log.report("rcpt-refused", "lmtp", "198.51.100.1")
    clock.now += seclog._PER_CLIENT_EVERY
    assert log.report("auth-failed", "imap", "198.51.100.1")
    assert not log.report("auth-failed", "imap", "198.51.100.1")
    clock.now += seclog._SUMMARY_EVERY
    log.report("auth-failed", "imap", "198.51.100.9")
    assert "suppressed auth-failed=91" in _lines(caplog)


def test_global_cap_bounds_lines_from_many_clients(
    writer: tuple[seclog.SecurityLog, _Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, clock = writer
    written = sum(log.report("auth-failed", "imap", f"2001:db8::{i:x}") for i in range(5000))
    assert written == int(seclog._GLOBAL_BURST)
    clock.now += 1.0
    written = sum(log.report("auth-failed", "imap", f"2001:db8:1::{i:x}") for i in range(5000))
    assert written == int(seclog._GLOBAL_RATE)


def test_nothing_written_below_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pushmail.security")
    assert not seclog.SecurityLog().report("auth-failed", "imap", "10.0.0.1")
    assert _lines(caplog) == []
