"""The IDLE path end to end: a message delivered is announced once, through the CLI."""

from __future__ import annotations

from collections.abc import Callable

from conftest import ConfiguredServer, Watch, deliver


def test_new_mail_is_announced_once(
    server: ConfiguredServer, watch_factory: Callable[..., Watch]
) -> None:
    w = watch_factory(server.imap)
    w.start()
    deliver(server, "first")
    deliver(server, "second")
    w.wait_subjects("first", "second")
    # Several DONE/IDLE renewals later, still exactly once each.
    w.wait_for(lambda evs: sum(1 for e in evs if e["event"] == "message") >= 2)
    assert w.stop() == 0
    assert sorted(w.subjects()) == ["first", "second"]
    stopped = [e for e in w.events() if e["event"] == "stopped"]
    assert stopped and stopped[0]["notified"] == 2
