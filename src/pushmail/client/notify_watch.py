"""The NOTIFY strategy (RFC 5465): every folder on one connection, the busiest one
(``notify_selected``, INBOX by default) kept selected.

After login the watcher asks, *before* catching anything up (so nothing arrives
unheard in between)::

    NOTIFY SET (SELECTED (MessageNew (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (...)])
                MessageExpunge))
               (MAILBOXES (INBOX f2 ...) (MessageNew MessageExpunge))

and idles with the kept folder EXAMINEd. What each kind of news costs:

* a new message in the kept folder arrives as ``* n EXISTS`` and ``* n FETCH`` with its
  UID, size and the headers the rules need (``pushed``): nothing is sent back, not even
  DONE, unless the message is to be downloaded;
* ``* STATUS f (... UIDNEXT u ...)`` for another folder whose UIDNEXT is not past the
  cursor (an expunge, mail already seen) costs nothing either; otherwise DONE, then
  ``EXAMINE f`` and ``UID FETCH cursor:*`` in one write, and the kept folder is
  EXAMINEd again (QRESYNC: its answer lists what changed meanwhile);
* the catch-up at start asks STATUS of every other folder in one write and EXAMINEs
  only those that changed.

A server that refuses the FETCH items (``notify_fetch_refused`` event) is asked again
without them: the kept folder then works like the IDLE path (EXISTS, DONE, UID FETCH).
A server that takes them but does not push them (``notify_push_missing``) is treated
the same from then on. A refused ``NOTIFY SET`` returns to the caller, which falls back
to one IDLE connection per folder. Renewals, ``server_keepalive`` silence and
dead-link detection are those of the IDLE path (IDLE is allowed under NOTIFY, §3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from pushmail.client.connection import CommandFailed, ConnectionLost, Counters, ImapClient
from pushmail.client.heartbeat import Beat, Heartbeat
from pushmail.client.mailbox import (
    NEW_MESSAGE_ITEMS,
    MailboxInfo,
    examine,
    examined,
    leave,
    new_messages,
    new_messages_command,
)
from pushmail.client.pipeline import Pipeline
from pushmail.client.pushed import SelectedPushes
from pushmail.client.response import Tagged, Untagged
from pushmail.client.rules import MessageInfo
from pushmail.client.settings import Account
from pushmail.client.state import FolderState
from pushmail.imap.commands import Fetch, Notify, NotifyEvent, NotifyGroup, Select, Status


class AccountWatcher(Protocol):
    """What NOTIFY watching uses of the account's watcher (``watcher.AccountWatcher``,
    which calls in here: a protocol, so this module does not import it back)."""

    account: Account
    pipeline: Pipeline
    heartbeat: Heartbeat
    counters: Counters

    def event(self, name: str, **fields: object) -> None: ...
    def beat(self, conn: ImapClient, **where: object) -> Beat: ...
    def first_cursor(self, info: MailboxInfo) -> int | None: ...
    async def resync(self, conn: ImapClient, folder: str) -> MailboxInfo: ...
    async def catch_up(self, conn: ImapClient, folder: str, info: MailboxInfo) -> None: ...
    async def fetch_and_announce(
        self,
        conn: ImapClient,
        folder: str,
        st: FolderState,
        modseq: int | None,
        uids: tuple[int, ...] | None = None,
    ) -> FolderState: ...
    async def announce(
        self,
        conn: ImapClient | None,
        folder: str,
        st: FolderState,
        new: list[MessageInfo],
        modseq: int | None,
    ) -> FolderState: ...


__all__ = ["PUSH_GRACE", "kept_selected", "notify_groups", "watch_by_notify"]

# How long the FETCH of a pushed message may trail its EXISTS (one server write in
# practice; a split TCP segment at worst) before the watcher fetches it itself.
PUSH_GRACE = 2.0


def canonical(folder: str) -> str:
    """INBOX is case-insensitive (RFC 3501 §5.1); every other name is exact."""
    return "INBOX" if folder.upper() == "INBOX" else folder


def kept_selected(account: Account) -> str | None:
    """The watched folder named by ``notify_selected``; None if it names none."""
    if not account.notify_selected:
        return None
    want = canonical(account.notify_selected)
    return next((f for f in account.folders if canonical(f) == want), None)


def notify_groups(folders: tuple[str, ...], fetch: bool) -> tuple[NotifyGroup, ...]:
    """The SELECTED group (with the FETCH items the rules need, if ``fetch``), and
    every watched folder by STATUS while it is not the selected one."""
    events: tuple[NotifyEvent, ...] = ("MessageNew", "MessageExpunge")  # go together
    return (
        NotifyGroup("SELECTED", events=events, fetch=NEW_MESSAGE_ITEMS if fetch else ()),
        NotifyGroup("MAILBOXES", mailboxes=folders, events=events),
    )


async def watch_by_notify(w: AccountWatcher, conn: ImapClient, folders: tuple[str, ...]) -> None:
    """Watch ``folders`` on ``conn`` until the link breaks; return at once if the
    server refuses ``NOTIFY SET``."""
    selected = kept_selected(w.account)
    fetch = await _notify_set(w, conn, folders, selected)
    if fetch is None:
        return
    await NotifyWatch(w, conn, folders, selected, fetch).run()


async def _notify_set(
    w: AccountWatcher, conn: ImapClient, folders: tuple[str, ...], selected: str | None
) -> bool | None:
    """True: new mail of the kept folder is pushed with its headers; False: without
    (or no folder is kept); None: NOTIFY SET refused."""
    if selected is not None:
        try:
            await conn.command(Notify(conn.next_tag(), notify_groups(folders, True)))
            return True
        except CommandFailed as e:
            w.event("notify_fetch_refused", reason=str(e))
    try:
        await conn.command(Notify(conn.next_tag(), notify_groups(folders, False)))
    except CommandFailed as e:
        w.event("notify_refused", reason=str(e))
        return None
    return False


@dataclass
class NotifyWatch:
    w: AccountWatcher
    conn: ImapClient
    folders: tuple[str, ...]
    selected: str | None  # the folder kept selected between catch-ups
    fetch_pushed: bool  # its new mail comes with UID and headers
    pushes: SelectedPushes | None = None  # while ``selected`` is selected
    waiting: list[MessageInfo] = field(default_factory=list)  # pushed, to download
    dirty: dict[str, dict[str, int]] = field(default_factory=dict)  # folder -> STATUS
    entered: bool = False  # the kept folder was EXAMINEd once on this connection

    async def run(self) -> None:
        beat = self.w.beat(self.conn, folders=list(self.folders))
        await self._start()
        while True:
            await self._settle()
            await self._round(beat)

    # -- catching up ------------------------------------------------------------
    async def _start(self) -> None:
        """STATUS of every other folder in one write; EXAMINE only those that
        changed; then the kept folder, EXAMINEd for good."""
        conn = self.conn
        others = tuple(f for f in self.folders if f != self.selected)
        items = ("UIDNEXT", "UIDVALIDITY") + (
            ("HIGHESTMODSEQ",) if "CONDSTORE" in conn.capabilities else ()
        )
        cmds = [Status(conn.next_tag(), f, items) for f in others]
        if cmds:
            await conn.send_commands(*cmds)
            for cmd in cmds:
                await conn.collect(cmd.tag)
        visited = False
        for f in others:
            visited |= await self._visit(f, conn.status_news.pop(canonical(f), {}))
            self.w.event("watching", folder=f, via="notify")
        await self._return(visited)
        if self.selected is not None:
            self.w.event("watching", folder=self.selected, via="notify")

    async def _return(self, visited: bool) -> None:
        """After other folders were EXAMINEd: the kept folder again, or none (then
        every event names its folder in a STATUS)."""
        if self.selected is not None and (visited or not self.entered):
            self.entered = True
            await self._enter_selected()
        elif visited:
            await leave(self.conn)

    async def _enter_selected(self) -> None:
        """EXAMINE the kept folder and catch it up: by QRESYNC the first time on this
        connection (what happened while away), by a plain EXAMINE when coming back
        from another folder (NOTIFY reported it meanwhile, and QRESYNC would list
        every message pushed since the last time, flags and all)."""
        assert self.selected is not None
        back = self.pushes is not None
        self.pushes = None
        self.waiting.clear()  # still past the cursor: the catch-up announces them
        if back:
            info = await examine(self.conn, self.selected, plain=True)
            await self._back(info)
        else:
            info = await self.w.resync(self.conn, self.selected)
            await self._kept(info)

    async def _back(self, info: MailboxInfo) -> None:
        """Back in the kept folder (its plain EXAMINE answered): catch it up."""
        assert self.selected is not None
        self.conn.news = False
        await self.w.catch_up(self.conn, self.selected, info)
        await self._kept(info)

    async def _kept(self, info: MailboxInfo) -> None:
        """The kept folder is selected and caught up: wait for its pushes."""
        assert self.selected is not None
        while self.conn.news:  # an EXISTS heard during the catch-up's fetch
            self.conn.news = False
            await self._fetch_selected(info.uidvalidity)
        name = self.w.account.name
        self.pushes = SelectedPushes(name, self.selected, info.uidvalidity, self.fetch_pushed)

    async def _fetch_selected(self, uidvalidity: int) -> None:
        assert self.selected is not None
        st = self._folder_state(self.selected, uidvalidity)
        await self.w.fetch_and_announce(self.conn, self.selected, st, None)

    def _folder_state(self, folder: str, uidvalidity: int) -> FolderState:
        st = self.w.pipeline.state.folder(self.w.account.name, folder)
        if st is None or st.uidvalidity != uidvalidity:
            raise ConnectionLost("folder state changed under us; resync")
        return st

    async def _visit(self, folder: str, values: dict[str, int]) -> bool:
        """Bring a folder that is not kept selected up to date from its STATUS: no
        command at all when nothing is new. True if it EXAMINEd the folder."""
        if not _complete(values):  # a STATUS without UIDVALIDITY/UIDNEXT: EXAMINE
            info = await self.w.resync(self.conn, folder)
            await self._drain(folder, info.uidvalidity)
            return True
        need = self._needs_fetch(folder, values)
        if need is None:
            return False
        await self._examine_and_fetch(folder, *need)
        return True

    def _needs_fetch(
        self, folder: str, values: dict[str, int]
    ) -> tuple[FolderState, int | None] | None:
        """From a complete STATUS: the state to fetch from and the STATUS's
        HIGHESTMODSEQ, or None (nothing new; what STATUS said is stored)."""
        uidvalidity, uidnext = values["UIDVALIDITY"], values["UIDNEXT"]
        state, name = self.w.pipeline.state, self.w.account.name
        modseq = values.get("HIGHESTMODSEQ")
        st = state.folder(name, folder)
        if st is None or st.uidvalidity != uidvalidity:
            if st is not None:
                self.w.event("uidvalidity_changed", folder=folder)
            cursor = self.w.first_cursor(MailboxInfo(uidvalidity, uidnext))
            if cursor is None:
                state.save_folder(name, folder, FolderState(uidvalidity, uidnext, modseq))
                return None
            st = FolderState(uidvalidity, cursor, None)
        if uidnext <= st.uidnext or (modseq is not None and modseq == st.highestmodseq):
            if modseq is not None and modseq != st.highestmodseq:
                state.save_folder(name, folder, FolderState(st.uidvalidity, st.uidnext, modseq))
            return None
        return st, modseq

    async def _examine_and_fetch(self, folder: str, st: FolderState, modseq: int | None) -> None:
        """EXAMINE and ``UID FETCH cursor:*`` in one write: the STATUS already said
        the folder is the one the cursor belongs to and that something is new.
        (A plain EXAMINE: QRESYNC would only add the flag changes.)"""
        conn = self.conn
        examine = Select(conn.next_tag(), folder, True)
        fetch = new_messages_command(conn, st.uidnext)
        assert fetch is not None
        await conn.send_commands(examine, fetch)
        untagged, _ = await conn.collect(examine.tag)
        conn.news = False  # what the EXAMINE counted, the fetch covers
        if _uidvalidity(untagged) != st.uidvalidity:
            await conn.collect(fetch.tag)
            raise ConnectionLost(f"{folder}: UIDVALIDITY changed since its STATUS; resync")
        untagged, _ = await conn.collect(fetch.tag)
        name = self.w.account.name
        new = new_messages(untagged, name, folder, st.uidvalidity, st.uidnext)
        await self.w.announce(conn, folder, st, new, modseq)
        await self._drain(folder, st.uidvalidity)

    def _one_write(self, dirty: dict[str, dict[str, int]]) -> bool:
        """Whether the visits and the way back to the kept folder can go in one
        write: nothing fetched may need a download (it would need its folder
        selected), and every STATUS says what to fetch."""
        return (
            self.entered
            and self.selected is not None
            and not self.w.pipeline.config.download.enabled
            and all(_complete(v) for v in dirty.values())
        )

    async def _visit_and_return(self, dirty: dict[str, dict[str, int]]) -> None:
        """``EXAMINE f``, ``UID FETCH cursor:*`` for each changed folder, then
        ``EXAMINE kept``: one write, one round trip. A folder's own news heard after
        its fetch began (its EXISTS) sends it round again, by a full resync."""
        assert self.selected is not None
        conn, name = self.conn, self.w.account.name
        needs = [(f, need) for f, v in dirty.items() if (need := self._needs_fetch(f, v))]
        if not needs:
            return
        steps: list[tuple[Select, Fetch]] = []
        for folder, (st, _modseq) in needs:
            ex = Select(conn.next_tag(), folder, True)
            fe = new_messages_command(conn, st.uidnext)
            assert fe is not None  # no UID list: never empty
            steps.append((ex, fe))
        back = Select(conn.next_tag(), self.selected, True)
        await conn.send_commands(*(c for step in steps for c in step), back)
        for (folder, (st, modseq)), (ex, fe) in zip(needs, steps, strict=True):
            untagged, _ = await conn.collect(ex.tag)
            conn.news = False
            if _uidvalidity(untagged) != st.uidvalidity:
                raise ConnectionLost(f"{folder}: UIDVALIDITY changed since its STATUS; resync")
            untagged, _ = await conn.collect(fe.tag)
            if conn.news:
                self.dirty[folder] = {}
            new = new_messages(untagged, name, folder, st.uidvalidity, st.uidnext)
            await self.w.announce(None, folder, st, new, modseq)
        self.pushes = None
        untagged, _ = await conn.collect(back.tag)
        await self._back(examined(untagged, self.selected))

    async def _drain(self, folder: str, uidvalidity: int) -> None:
        """While another folder is selected it is the SELECTED group's: its own news
        heard meanwhile is fetched before leaving it."""
        while self.conn.news:
            self.conn.news = False
            st = self._folder_state(folder, uidvalidity)
            await self.w.fetch_and_announce(self.conn, folder, st, None)

    # -- between two IDLEs ------------------------------------------------------
    async def _settle(self) -> None:
        """Do what the last IDLE brought, until nothing is left to do."""
        while True:
            self._sort_status()
            p = self.pushes
            if self.waiting and p is not None:
                new, self.waiting = self.waiting, []
                st = self._folder_state(p.folder, p.uidvalidity)
                await self.w.announce(self.conn, p.folder, st, new, None)
            elif p is not None and (p.needs_fetch or self.conn.news):
                p.reset()
                self.conn.news = False
                await self._fetch_selected(p.uidvalidity)
            elif self.dirty:
                dirty, self.dirty = self.dirty, {}
                if self._one_write(dirty):
                    await self._visit_and_return(dirty)
                    continue
                visited = False
                for folder, values in dirty.items():
                    visited |= await self._visit(folder, values)
                await self._return(visited)
            else:
                self.conn.news = False  # nothing selected: nothing it could be about
                return

    def _sort_status(self) -> None:
        """Keep the STATUS news that calls for a visit; a STATUS of the kept folder
        past its cursor (a server that sends one besides the push) means fetch."""
        by_name = {canonical(f): f for f in self.folders}
        news, self.conn.status_news = self.conn.status_news, {}
        name, state = self.w.account.name, self.w.pipeline.state
        for key, values in news.items():
            folder = by_name.get(key)
            if folder is None:
                continue
            st = state.folder(name, folder)
            stale = (
                st is None
                or values.get("UIDVALIDITY") != st.uidvalidity
                or values.get("UIDNEXT", st.uidnext + 1) > st.uidnext
            )
            if folder == self.selected:
                if stale and self.pushes is not None and not self.pushes.pending:
                    self.conn.news = True
            elif stale:
                self.dirty[folder] = values
            else:  # nothing new (an expunge, mail already announced): no command at all
                assert st is not None
                modseq = values.get("HIGHESTMODSEQ")
                if modseq is not None and modseq != st.highestmodseq:
                    state.save_folder(name, folder, FolderState(st.uidvalidity, st.uidnext, modseq))

    # -- IDLE -------------------------------------------------------------------
    def _want_done(self) -> bool:
        p = self.pushes
        return bool(self.waiting or self.dirty or self.conn.news or (p and p.needs_fetch))

    async def _round(self, beat: Beat) -> None:
        """One IDLE: pushes are handled as they come; DONE only for what needs a
        command (a download, a fetch, another folder) or the heartbeat's renewal."""
        conn, w = self.conn, self.w
        tag = conn.next_tag()
        await conn.send(f"{tag} IDLE\r\n".encode("ascii"))
        early = await conn.wait_continuation()
        if self.pushes is not None and any(r.keyword in ("EXISTS", "FETCH") for r in early):
            self.pushes.give_up()  # news before "+" was not fed to the pushes: fetch
        beat.restart()
        w.heartbeat.add(beat)
        try:
            while True:
                # Only with everything read handled: an EXISTS waits for its push.
                if not conn.buffered and self._want_done() and beat.probe_sent is None:
                    beat.probe_sent = time.monotonic()
                    conn.write_now(b"DONE\r\n")
                    w.heartbeat.poke(beat)
                resp = await self._next()
                if resp is None:
                    continue
                if isinstance(resp, Tagged):
                    if resp.tag == tag:
                        if resp.status != "OK":
                            raise CommandFailed(resp)
                        beat.answered()
                        break
                elif isinstance(resp, Untagged):
                    if resp.keyword == "BYE":
                        beat.server_ended()
                    self._heard(resp)
                    if not conn.buffered:
                        await self._take_pushes()
        except ConnectionLost:
            beat.died()  # a reset or EOF in answer to a renewal: the NAT forgot us
            raise
        finally:
            w.heartbeat.remove(beat)
        if self.pushes is not None and self.pushes.pending:
            self.pushes.give_up()

    async def _next(self) -> Tagged | Untagged | None:
        """The next response; None (after a push never came) or a continuation to skip."""
        p = self.pushes
        if p is not None and p.pending and not self.conn.buffered:
            resp = await self.conn.poll(PUSH_GRACE)
            if resp is None:
                self._push_missing(p)
                return None
        else:
            resp = await self.conn.read(None)  # bounded by the heartbeat
        return resp if isinstance(resp, Tagged | Untagged) else None

    def _heard(self, resp: Untagged) -> None:
        conn = self.conn
        conn.check_bye(resp)
        p = self.pushes
        if p is not None:
            st = self.w.pipeline.state.folder(self.w.account.name, p.folder)
            p.feed(resp, conn.exists, st.uidnext if st is not None else 1)
        conn.note_news(resp)
        if resp.keyword == "OK" and resp.code is None:  # not [HIGHESTMODSEQ n]
            self.w.counters.keepalives += 1

    async def _take_pushes(self) -> None:
        """With everything read so far: announce what was pushed, or ask for DONE."""
        p = self.pushes
        if p is not None:
            if p.fetch_pushed:
                self.conn.news = False  # EXISTS and RECENT: the pushes say what is new
            new = p.take()
            if self.waiting or any(self.w.pipeline.wants_download(i) for i in new):
                self.waiting.extend(new)  # the download needs the IDLE ended
            elif new:
                st = self._folder_state(p.folder, p.uidvalidity)
                self.w.counters.pushed += len(new)
                await self.w.announce(None, p.folder, st, new, None)
        self._sort_status()  # after the pushes moved the cursor

    def _push_missing(self, p: SelectedPushes) -> None:
        """The server took the FETCH items but sent none: fetch, and stop waiting
        for them on this connection."""
        p.give_up()
        if p.fetch_pushed:
            self.w.event("notify_push_missing", folder=p.folder, waited=PUSH_GRACE)
            p.fetch_pushed = self.fetch_pushed = False


def _complete(values: dict[str, int]) -> bool:
    return "UIDVALIDITY" in values and "UIDNEXT" in values


def _uidvalidity(untagged: list[Untagged]) -> int | None:
    for r in untagged:
        if r.code == "UIDVALIDITY" and r.code_args and isinstance(r.code_args[0], int):
            return r.code_args[0]
    return None
