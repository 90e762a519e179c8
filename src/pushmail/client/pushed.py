"""New mail of the folder kept selected under NOTIFY, as the server pushes it (sans-IO).

With ``NOTIFY SET (SELECTED (MessageNew (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS
(...)]) ...)) ...`` (RFC 5465 §5.2) a new message in the selected folder arrives as
``* n EXISTS`` followed by ``* n FETCH (UID ... RFC822.SIZE ... BODY[HEADER.FIELDS
...] ...)``: all the rules need, with no command sent. ``SelectedPushes`` turns those
responses into ``MessageInfo`` values, and says when they cannot be trusted to cover
what is new (then the watcher fetches from the folder's cursor, as the IDLE path does):

* an EXISTS announces ``n - before`` new messages; their pushes are taken only once
  every one of them has come, so the cursor never moves past a message not yet seen;
* an expunge while pushes are awaited muddles the count: fetch instead;
* without FETCH items (a server that refused them), every EXISTS means fetch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pushmail.client.mailbox import has_headers, message_info
from pushmail.client.response import ResponseError, Untagged, fetch_items
from pushmail.client.rules import MessageInfo

__all__ = ["SelectedPushes"]


@dataclass(slots=True)
class SelectedPushes:
    account: str
    folder: str
    uidvalidity: int
    fetch_pushed: bool  # NOTIFY SET took the FETCH items
    expected: int = 0  # new messages EXISTS announced since the last ``take``
    infos: dict[int, MessageInfo] = field(default_factory=dict)
    needs_fetch: bool = False  # fetch from the cursor: the pushes do not cover the news

    @property
    def pending(self) -> bool:
        """An EXISTS announced more messages than have been pushed so far."""
        return not self.needs_fetch and len(self.infos) < self.expected

    def feed(self, resp: Untagged, exists_before: int, cursor: int) -> None:
        """One untagged response heard while idling; ``exists_before`` is the
        folder's message count before it, ``cursor`` the folder's UIDNEXT cursor."""
        if resp.keyword == "EXISTS" and resp.number is not None:
            if resp.number > exists_before:
                self.expected += resp.number - exists_before
                self.needs_fetch |= not self.fetch_pushed
        elif resp.keyword in ("EXPUNGE", "VANISHED"):
            self.needs_fetch |= self.pending
        elif resp.keyword == "FETCH" and self.fetch_pushed:
            try:
                items = fetch_items(resp.values)
            except ResponseError:
                self.needs_fetch = True
                return
            uid = items.get("UID")
            if isinstance(uid, int) and uid >= cursor and has_headers(items):
                self.infos[uid] = message_info(
                    self.account, self.folder, self.uidvalidity, uid, items
                )

    def take(self) -> list[MessageInfo]:
        """The pushed messages by UID, once none announced is still awaited."""
        if self.pending or self.needs_fetch or not self.infos:
            return []
        out = [self.infos[u] for u in sorted(self.infos)]
        self.reset()
        return out

    def give_up(self) -> None:
        """An announced message was not pushed (in time): fetch from the cursor."""
        self.reset()
        self.needs_fetch = True

    def reset(self) -> None:
        self.infos.clear()
        self.expected = 0
        self.needs_fetch = False
