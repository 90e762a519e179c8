"""From "this UID is new" to "the user was told, once": dedup, rules, download, hooks.

The order matters for the guarantees:

1. a message already claimed (announced before, perhaps before a restart) is skipped;
2. the rules decide whether it matters; if so and downloading is on, it is fetched;
3. the key is claimed in the state store (committed) — only then do the hooks run.

Thus no hook ever runs twice for one (account, folder, UIDVALIDITY, UID), whatever
reconnects, resyncs or restarts happen; and a message is never skipped, because the
folder's UIDNEXT cursor advances only past messages that went through step 3.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pushmail.client.connection import Counters, ImapClient
from pushmail.client.hooks import EventLog, HookRunner
from pushmail.client.mailbox import download
from pushmail.client.rules import MessageInfo, decide, read_mute
from pushmail.client.settings import WatchConfig
from pushmail.client.state import WatchState

__all__ = ["Pipeline"]


@dataclass
class Pipeline:
    config: WatchConfig  # replaced on reload
    state: WatchState
    log: EventLog
    hooks: HookRunner
    counters: Counters

    def wants_download(self, info: MessageInfo) -> bool:
        """Whether ``handle`` would fetch this message's body (so it needs a
        connection in command state): not yet claimed, wanted by the rules,
        downloading on, and no copy stored yet."""
        if not self.config.download.enabled:
            return False
        key = (info.account, info.folder, info.uidvalidity, info.uid)
        if self.state.is_claimed(*key) or self.state.download(key) is not None:
            return False
        now = dt.datetime.now().astimezone()
        return decide(self.config, info, now, read_mute(self.config.state_dir)).wanted

    async def handle(self, info: MessageInfo, conn: ImapClient | None) -> None:
        key = (info.account, info.folder, info.uidvalidity, info.uid)
        if self.state.is_claimed(*key):
            return
        now = dt.datetime.now().astimezone()
        decision = decide(self.config, info, now, read_mute(self.config.state_dir))
        if decision.wanted and self.config.download.enabled and conn is not None:
            stored = self.state.download(key)
            if stored is None:
                info = await download(conn, self.config.download, info)
                if info.path:
                    self.state.save_download(key, info.path, info.partial)
            else:
                info = _with_path(info, *stored)
        if not self.state.claim(*key):
            return
        fields = info.as_json()
        self.log.write(
            "message",
            **fields,
            notified=decision.notify,
            reason=decision.reason,
            vip=decision.vip,
        )
        if decision.notify:
            self.counters.notified += 1
            self.hooks.submit(info, decision)


def _with_path(info: MessageInfo, path: str, partial: bool) -> MessageInfo:
    from dataclasses import replace

    return replace(info, path=path, partial=partial)
