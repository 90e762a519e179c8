"""The in-process bus: per-user dispatch, isolation of failing listeners."""

from __future__ import annotations

import logging

import pytest

from pushmail.events.interfaces import MailboxChanged
from pushmail.events.local import LocalBus, publish_all


def test_publish_reaches_only_that_users_listeners() -> None:
    bus = LocalBus()
    got: list[tuple[str, MailboxChanged]] = []
    bus.subscribe(1, lambda e: got.append(("a", e)))
    bus.subscribe(1, lambda e: got.append(("b", e)))
    bus.subscribe(2, lambda e: got.append(("c", e)))
    event = MailboxChanged(1, 10, 5, "new")
    bus.publish(event)
    assert got == [("a", event), ("b", event)]
    bus.publish(MailboxChanged(3, 1, 1))  # nobody listens: fine
    assert len(got) == 2


def test_unsubscribe_and_same_listener_twice() -> None:
    bus = LocalBus()
    got: list[MailboxChanged] = []
    first = bus.subscribe(1, got.append)
    second = bus.subscribe(1, got.append)
    bus.publish(MailboxChanged(1, 1, 1))
    assert len(got) == 2
    first()
    first()  # idempotent
    bus.publish(MailboxChanged(1, 1, 2))
    assert len(got) == 3
    second()
    bus.publish(MailboxChanged(1, 1, 3))
    assert len(got) == 3
    assert bus.listener_count() == 0


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = LocalBus()
    got: list[MailboxChanged] = []

    def broken(event: MailboxChanged) -> None:
        raise RuntimeError("boom")

    bus.subscribe(1, broken)
    bus.subscribe(1, got.append)
    with caplog.at_level(logging.ERROR):
        bus.publish(MailboxChanged(1, 1, 1))
    assert len(got) == 1
    assert "change listener failed" in caplog.text


def test_listener_may_unsubscribe_during_dispatch() -> None:
    bus = LocalBus()
    got: list[str] = []
    holder: list[object] = []

    def once(event: MailboxChanged) -> None:
        got.append("once")
        unsubscribe = holder[0]
        assert callable(unsubscribe)
        unsubscribe()

    holder.append(bus.subscribe(1, once))
    bus.subscribe(1, lambda e: got.append("always"))
    bus.publish(MailboxChanged(1, 1, 1))
    bus.publish(MailboxChanged(1, 1, 2))
    assert got == ["once", "always", "always"]


def test_publish_all_batches_or_loops() -> None:
    bus = LocalBus()
    got: list[MailboxChanged] = []
    bus.subscribe(7, got.append)
    events = [MailboxChanged(7, 1, n) for n in range(3)]
    publish_all(bus, events)
    assert got == events

    class Plain:
        def __init__(self) -> None:
            self.seen: list[MailboxChanged] = []

        def publish(self, event: MailboxChanged) -> None:
            self.seen.append(event)

    plain = Plain()
    publish_all(plain, events)
    assert plain.seen == events


def test_dispatch_cost_does_not_depend_on_other_users() -> None:
    bus = LocalBus()
    calls = 0

    def count(event: MailboxChanged) -> None:
        nonlocal calls
        calls += 1

    for user_id in range(10_000):
        bus.subscribe(user_id, count)
    bus.publish(MailboxChanged(42, 1, 1))
    assert calls == 1
    assert bus.listener_count(42) == 1 and bus.listener_count() == 10_000
