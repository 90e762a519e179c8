"""The piece of the QRESYNC resync that needs no server: counting the UIDs of a
``VANISHED`` response without expanding it (``1:4000000000`` must not allocate four
billion ints). The resync itself is tested against servers in test_watch_resync.py and
test_watch_dovecot.py."""

from __future__ import annotations

from pushmail.client.mailbox import count_uids
from pushmail.client.response import Untagged, Value, parse_response


def _vanished_set(line: bytes) -> Value:
    resp = parse_response(line)
    assert isinstance(resp, Untagged) and resp.keyword == "VANISHED"
    return resp.values[-1]


def test_count_uids_of_vanished_responses() -> None:
    assert count_uids(_vanished_set(b"* VANISHED (EARLIER) 1,4\r\n")) == 2
    assert count_uids(_vanished_set(b"* VANISHED (EARLIER) 3:5,9,20:11\r\n")) == 14
    assert count_uids(_vanished_set(b"* VANISHED 7\r\n")) == 1
    assert count_uids(_vanished_set(b"* VANISHED (EARLIER) 1:4000000000\r\n")) == 4000000000


def test_count_uids_ignores_what_is_not_a_uid_set() -> None:
    assert count_uids(_vanished_set(b"* VANISHED (EARLIER) 1:*\r\n")) == 0
    assert count_uids(_vanished_set(b"* VANISHED (EARLIER) abc\r\n")) == 0
    assert count_uids(_vanished_set(b"* VANISHED (EARLIER)\r\n")) == 0
    assert count_uids(None) == 0
