"""The alert itself: content-free, padded to a fixed size, with a collapse key.

An alert is a nudge, not a copy of the mail: it says that *an account* has new mail in
*a mailbox* and how many, so the device connects (IMAP) and fetches the rest over its
own authenticated channel. Sender, subject and body never leave the server this way,
so a push service, a webhook host or a lost phone's lock screen learns nothing but
counts. The account is named by an opaque id (an HMAC of the user id under a server
secret), not by the address.

The JSON is padded to a multiple of ``PAD_BLOCK`` bytes so that its length (visible
even through Web Push encryption) does not tell mailbox names or counts apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

PAD_BLOCK = 256  # bytes; every alert body is a multiple of this
ALERT_VERSION = 1
# The JSON keys an alert carries, and nothing else (tests check exactly these).
ALERT_FIELDS = frozenset({"v", "account", "mailbox", "new", "unseen", "total", "test", "pad"})


@dataclass(frozen=True, slots=True)
class Alert:
    """What one device is told: ``new`` messages arrived in ``mailbox`` of
    ``account`` since the last alert; ``unseen``/``total`` are the mailbox's counts
    when the alert was made. ``test`` marks an alert a user asked for."""

    account: str
    mailbox: str
    new: int
    unseen: int
    total: int
    test: bool = False

    def __post_init__(self) -> None:
        if min(self.new, self.unseen, self.total) < 0:
            raise ValueError("alert counts must not be negative")
        if not self.account or not self.mailbox:
            raise ValueError("alert needs an account and a mailbox")

    def merged(self, later: Alert) -> Alert:
        """This alert and a later one for the same device and mailbox as one:
        the new messages add up, the mailbox counts are the later ones."""
        return Alert(
            self.account,
            self.mailbox,
            self.new + later.new,
            later.unseen,
            later.total,
            self.test and later.test,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": ALERT_VERSION,
            "account": self.account,
            "mailbox": self.mailbox,
            "new": self.new,
            "unseen": self.unseen,
            "total": self.total,
            "test": self.test,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """The inverse of ``to_dict`` (for the persistent queue); ValueError if bad."""
        try:
            return cls(
                str(data["account"]),
                str(data["mailbox"]),
                int(data["new"]),
                int(data["unseen"]),
                int(data["total"]),
                bool(data.get("test", False)),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"not an alert: {data!r}") from e

    def encode(self) -> bytes:
        """Compact JSON, padded with a ``pad`` field of spaces to a multiple of
        PAD_BLOCK bytes (ASCII only, so the length is exact)."""
        body = self.to_dict()
        raw = json.dumps({**body, "pad": ""}, separators=(",", ":"), ensure_ascii=True)
        size = -(-len(raw) // PAD_BLOCK) * PAD_BLOCK
        body["pad"] = " " * (size - len(raw))
        return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def summary(self) -> str:
        """One human line with nothing but counts (for ntfy, which shows text)."""
        if self.test:
            return "Test alert from pushmail"
        noun = "message" if self.new == 1 else "messages"
        return f"{self.new} new {noun} in {self.mailbox} ({self.unseen} unread)"


def opaque_account(secret: bytes, user_id: int) -> str:
    """A stable id for the account that reveals neither the address nor the user
    id: 16 bytes of HMAC-SHA256, URL-safe base64 without padding."""
    digest = hmac.new(secret, b"account:%d" % user_id, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def collapse_key(account: str, mailbox: str) -> str:
    """The Web Push ``Topic`` (RFC 8030 §5.4: at most 32 URL-safe base64
    characters): one per account and mailbox, so a push service keeps only the
    latest undelivered alert for it. Hashed so that it names nothing."""
    digest = hashlib.sha256(f"{account}\0{mailbox}".encode()).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode("ascii")  # 24 characters


def test_alert(secret: bytes, user_id: int) -> tuple[Alert, str]:
    """A test alert a user or operator asked for, and its own topic (so it neither
    replaces nor is replaced by a real alert)."""
    account = opaque_account(secret, user_id)
    return Alert(account, "INBOX", 0, 0, 0, test=True), collapse_key(account, "\0test")
