"""The alert is content-free, fixed-size, and collapses per account and mailbox."""

from __future__ import annotations

import json

import pytest

from pushmail.push.alert import ALERT_FIELDS, PAD_BLOCK, Alert, collapse_key, opaque_account


def test_encoding_has_exactly_the_content_free_fields_and_is_padded() -> None:
    for alert in (Alert("a", "INBOX", 1, 1, 1), Alert("acct", "x" * 300, 10**6, 10**6, 10**6)):
        raw = alert.encode()
        assert len(raw) % PAD_BLOCK == 0
        data = json.loads(raw)
        assert set(data) == ALERT_FIELDS
        assert Alert.from_dict(data) == alert
    assert len(Alert("a", "INBOX", 1, 1, 1).encode()) == len(Alert("b", "Sent", 99, 9, 9).encode())


def test_opaque_account_hides_the_user() -> None:
    a = opaque_account(b"k" * 32, 42)
    assert a == opaque_account(b"k" * 32, 42)
    assert a != opaque_account(b"k" * 32, 43) and a != opaque_account(b"j" * 32, 42)
    assert "42" not in a and len(a) == 22


def test_collapse_key_is_a_valid_topic() -> None:
    t = collapse_key("acct", "INBOX")
    assert len(t) <= 32 and all(c.isalnum() or c in "-_" for c in t)
    assert t != collapse_key("acct", "Work") and t == collapse_key("acct", "INBOX")


def test_merge_adds_new_and_keeps_latest_counts() -> None:
    m = Alert("a", "INBOX", 2, 5, 10).merged(Alert("a", "INBOX", 3, 8, 13))
    assert (m.new, m.unseen, m.total) == (5, 8, 13)


def test_invalid_alerts_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        Alert("a", "INBOX", -1, 0, 0)
    with pytest.raises(ValueError):
        Alert("", "INBOX", 1, 0, 0)
    with pytest.raises(ValueError):
        Alert.from_dict({"account": "a"})
