"""The security tests drive the real listeners: their harnesses live with the tests
of each protocol."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _sub in ("traces", "smtp", "push", "e2e", "web"):
    sys.path.insert(0, str(_TESTS / _sub))

from smtp_harness import smtpd, smtpd_factory  # noqa: E402

__all__ = ["smtpd", "smtpd_factory"]


import pytest  # noqa: E402

from pushmail import seclog  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_security_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the security log's rate limits unspent: an earlier test's
    flood from 127.0.0.1 must not hide this test's lines."""
    monkeypatch.setattr(seclog, "_default", seclog.SecurityLog())
