"""The coalesced heartbeat, the backoff, the state store and BODYSTRUCTURE walking."""

from __future__ import annotations

from pathlib import Path

from pushmail.client.heartbeat import Beat, Heartbeat
from pushmail.client.mailbox import first_text_part
from pushmail.client.state import FolderState, WatchState
from pushmail.client.watcher import Backoff


class _Conn:
    def __init__(self) -> None:
        self.renewed = 0
        self.aborted: list[str] = []
        self.heard = 0.0


def _beat(c: _Conn, renew_every: float = 10.0, silence: float | None = None) -> Beat:
    def renew() -> None:
        c.renewed += 1

    b = Beat(renew, c.aborted.append, lambda: c.heard, renew_every, 2.0, silence)
    b.started = 0.0
    return b


def test_renewals_within_slack_share_one_wakeup() -> None:
    hb = Heartbeat(slack=3.0)
    a, b, c = _Conn(), _Conn(), _Conn()
    beats = [_beat(a, 10.0), _beat(b, 12.0), _beat(c, 20.0)]
    for beat in beats:
        hb.add(beat)
    hb.tick(10.0)
    assert (a.renewed, b.renewed, c.renewed) == (1, 1, 0)
    assert beats[0].due() == 12.0  # now waiting for the answer to DONE


def test_unanswered_done_and_silence_abort() -> None:
    hb = Heartbeat()
    a, b = _Conn(), _Conn()
    ba, bb = _beat(a, 10.0), _beat(b, 100.0, silence=5.0)
    hb.add(ba)
    hb.add(bb)
    hb.tick(4.0)
    assert not a.aborted and not b.aborted
    hb.tick(10.0)  # a renews; b has been silent since 0
    assert a.renewed == 1 and b.aborted == ["server silent for too long"]
    ba.restart()  # the server answered: IDLE again
    ba.started = 10.0
    hb.tick(15.0)
    assert not a.aborted
    hb.tick(20.0)
    hb.tick(22.5)  # DONE sent at 20 unanswered for the 2 s deadline
    assert a.aborted == ["no answer to DONE"]


def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(1.0, 8.0)
    delays = [b.next() for _ in range(6)]
    for d, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base * 0.5 <= d <= base
    b.reset()
    assert b.next() <= 1.0


def test_state_claims_once_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    s = WatchState(path, keep=3)
    assert s.claim("a", "INBOX", 5, 1) and not s.claim("a", "INBOX", 5, 1)
    assert s.claim("a", "INBOX", 6, 1)  # a new UIDVALIDITY is a new message
    s.save_folder("a", "INBOX", FolderState(5, 2, 17))
    s.close()
    s = WatchState(path, keep=3)
    assert s.is_claimed("a", "INBOX", 5, 1)
    assert s.folder("a", "INBOX") == FolderState(5, 2, 17)
    for uid in range(2, 201):
        s.claim("a", "INBOX", 6, uid)
    assert s.notified_count() == 3  # trimmed to the newest 3 (every 100th claim)
    s.close()


def test_first_text_part() -> None:
    text = (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1)
    image = (b"image", b"png", None, None, None, b"base64", 100)
    assert first_text_part(text) == (1,)
    assert first_text_part((image, text, b"mixed")) == (2,)
    assert first_text_part((image, (text, text, b"alternative"), b"mixed")) == (2, 1)
    assert first_text_part((image, image, b"mixed")) is None
    assert first_text_part(None) is None
