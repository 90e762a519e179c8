"""Watching one account: the strategy choice, the IDLE and polling loops, resync and
reconnection.

Strategy (``mode = "auto"``): one IDLE connection per folder up to
``max_idle_connections`` when the server offers IDLE, the remaining folders polled on one
more connection; without IDLE, every folder is polled. When the server offers NOTIFY
(RFC 5465) and IDLE, every folder is watched on ONE connection instead, the busiest
kept selected so its new mail comes in the push itself (``notify_watch``). A refused
``NOTIFY SET`` falls back to the per-folder strategy.

Every loop runs under ``reconnecting``: an error is sorted (network → retry after a
short jittered exponential backoff; authentication → stop this account and say so;
connection limits → back off at least ``busy_backoff``), and a network change on Linux
cuts a backoff short. After each (re)connect the folder is resynced from its stored
cursor before idling, so what arrived while away is announced exactly once: by a
QRESYNC EXAMINE where the server offers it (``ENABLE QRESYNC`` right after login), else
by CONDSTORE's HIGHESTMODSEQ and a UID range (see ``mailbox``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pushmail.client.connection import (
    AuthFailed,
    CommandFailed,
    ConnectionLost,
    Counters,
    ImapClient,
    ServerBusy,
    classify_login_failure,
)
from pushmail.client.heartbeat import Beat, Heartbeat
from pushmail.client.keepalive_learn import (
    KeepaliveLearner,
    learner_for,
    make_beat,
)
from pushmail.client.mailbox import MailboxInfo, examine, fetch_new, leave, status
from pushmail.client.notify_watch import kept_selected, watch_by_notify
from pushmail.client.pipeline import Pipeline
from pushmail.client.response import ResponseError, Tagged, Untagged
from pushmail.client.rules import MessageInfo
from pushmail.client.settings import Account
from pushmail.client.state import FolderState
from pushmail.imap.commands import Enable, Login
from pushmail.imap.types import Secret

__all__ = ["AccountWatcher", "Backoff", "open_account"]

log = logging.getLogger("pushmail.watch")


async def open_account(a: Account, counters: Counters) -> ImapClient:
    """Connect and log in; a refused login is sorted into AuthFailed or ServerBusy."""
    conn = await ImapClient.open(a.endpoint(), counters, a.response_timeout, a.tcp_keepalive)
    try:
        if not conn.capabilities:
            await conn.command_text("CAPABILITY")
        if "LOGINDISABLED" in conn.capabilities:
            raise AuthFailed("server refuses LOGIN here (use tls or starttls)")
        password = await asyncio.to_thread(a.secret)
        try:
            await conn.command(Login(conn.next_tag(), a.username, Secret(password)))
        except CommandFailed as e:
            raise classify_login_failure(e.tagged) from None
        if "IMAP4REV1" not in conn.capabilities:  # LOGIN's OK did not refresh them
            await conn.command_text("CAPABILITY")
        await enable_qresync(conn)
    except BaseException:
        conn.abort()
        raise
    return conn


async def enable_qresync(conn: ImapClient) -> None:
    """``ENABLE QRESYNC`` where offered, so every resync is one QRESYNC EXAMINE. A
    refusal only means resyncing the CONDSTORE / UID-range way."""
    if not {"ENABLE", "QRESYNC"} <= conn.capabilities:
        return
    try:
        untagged, _ = await conn.command(Enable(conn.next_tag(), ("QRESYNC",)))
    except CommandFailed:
        return
    for r in untagged:
        if r.keyword == "ENABLED":
            conn.enabled |= {str(v).upper() for v in r.values}


class Backoff:
    """Jittered exponential backoff: ``min * 2**n``, capped, times a random 0.5–1."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.failures = low, high, 0

    def next(self) -> float:
        delay = min(self.high, self.low * 2.0**self.failures)
        self.failures += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class AccountWatcher:
    account: Account
    pipeline: Pipeline
    heartbeat: Heartbeat
    counters: Counters
    network_changed: asyncio.Event = field(default_factory=asyncio.Event)
    auth_failed: bool = False
    keepalive: KeepaliveLearner | None = None

    def __post_init__(self) -> None:
        a = self.account
        if a.keepalive_learn and self.keepalive is None:
            self.keepalive = learner_for(
                a.name,
                self.pipeline.config.state_dir,
                a.keepalive_min,
                a.keepalive_max,
                lambda why, s: self.event("keepalive_interval", why=why, seconds=round(s, 2)),
            )

    def event(self, name: str, **fields: object) -> None:
        self.pipeline.log.write(name, account=self.account.name, **fields)

    # -- entry ----------------------------------------------------------------------
    async def run(self) -> None:
        """Decide the strategy once (first successful login), then run its loops."""
        caps: frozenset[str] = frozenset()

        async def probe() -> None:
            nonlocal caps
            conn = await self.login()
            caps = conn.capabilities
            await conn.logout()

        if not await self.reconnecting("probe", probe):
            return
        folders = self.account.folders
        if self.account.mode in ("auto", "notify") and {"NOTIFY", "IDLE"} <= caps:
            selected = kept_selected(self.account)
            self.event("strategy", notify=list(folders), selected=selected, idle=[], poll=[])
            if not await self.reconnecting("notify", self._notify_body(folders)):
                return
            # The body returns only when NOTIFY SET was refused: watch per folder.
        use_idle = self.account.mode in ("auto", "idle", "notify") and "IDLE" in caps
        cap = self.account.max_idle_connections if use_idle else 0
        idle, polled = folders[:cap], folders[cap:]
        self.event("strategy", idle=list(idle), poll=list(polled))
        loops = [self.reconnecting(f"idle {f}", self._idle_body(f)) for f in idle]
        if polled:
            loops.append(self.reconnecting("poll", self._poll_body(polled)))
        await asyncio.gather(*loops)

    async def reconnecting(self, what: str, body: Callable[[], Awaitable[None]]) -> bool:
        """Run ``body`` until it returns; False if the account's login was refused."""
        a = self.account
        backoff = Backoff(a.backoff_min, a.backoff_max)
        while not self.auth_failed:
            started = time.monotonic()
            try:
                await body()
                return True
            except AuthFailed as e:
                self.auth_failed = True  # CertificateRejected too, under its own event
                self.event(getattr(e, "event", "auth_failed"), error=str(e))
                return False
            except ServerBusy as e:
                delay, reason = max(a.busy_backoff, backoff.next()), str(e)
            except (ConnectionLost, CommandFailed, ResponseError) as e:
                if time.monotonic() - started > a.backoff_max:
                    backoff.reset()  # it had been up for a good while
                delay, reason = backoff.next(), str(e)
            except Exception as e:  # a bug, or input nothing above foresaw: log, retry
                log.exception("watcher %s of %s failed", what, a.name)
                delay, reason = max(a.backoff_max, backoff.next()), f"internal error: {e!r}"
            self.counters.reconnects += 1
            self.event("disconnected", where=what, reason=reason, retry_in=round(delay, 2))
            await self._sleep(delay)
        return False

    async def _sleep(self, delay: float) -> None:
        """Sleep, but wake at once when the network changes."""
        self.network_changed.clear()
        try:
            async with asyncio.timeout(delay):
                await self.network_changed.wait()
        except TimeoutError:
            pass

    async def login(self) -> ImapClient:
        return await open_account(self.account, self.counters)

    # -- resync ---------------------------------------------------------------------
    async def resync(self, conn: ImapClient, folder: str) -> MailboxInfo:
        """EXAMINE the folder (QRESYNC from its stored state where possible) and
        announce what arrived since the cursor. An EXISTS heard during the EXAMINE is
        covered by the catch-up; one heard after it (during the fetch) stays news."""
        known = self.pipeline.state.folder(self.account.name, folder)
        info = await examine(conn, folder, known)
        conn.news = False
        await self.catch_up(conn, folder, info)
        return info

    async def catch_up(self, conn: ImapClient, folder: str, info: MailboxInfo) -> None:
        """Announce everything that arrived since the stored cursor, then move it."""
        state = self.pipeline.state
        name = self.account.name
        st = state.folder(name, folder)
        if (
            st is not None
            and info.changed is not None
            and st.uidvalidity == info.uidvalidity
            and st.highestmodseq == info.qresync_from
        ):
            # The server listed every message changed since our HIGHESTMODSEQ: the
            # new ones are those at or above the cursor; nothing else can be new.
            self.counters.qresync += 1
            self.counters.vanished += info.vanished
            await self.fetch_and_announce(conn, folder, st, info.highestmodseq, info.changed)
            return
        if st is None or st.uidvalidity != info.uidvalidity:
            if st is not None:
                self.event("uidvalidity_changed", folder=folder)
            cursor = self.first_cursor(info)
            if cursor is None:
                state.save_folder(
                    name,
                    folder,
                    FolderState(info.uidvalidity, info.uidnext or 1, info.highestmodseq),
                )
                return
            st = FolderState(info.uidvalidity, cursor, None)
        unchanged = info.highestmodseq is not None and info.highestmodseq == st.highestmodseq
        if unchanged or (info.uidnext is not None and info.uidnext <= st.uidnext):
            state.save_folder(
                name, folder, FolderState(st.uidvalidity, st.uidnext, info.highestmodseq)
            )
            return
        await self.fetch_and_announce(conn, folder, st, info.highestmodseq)

    def first_cursor(self, info: MailboxInfo) -> int | None:
        """Where a folder seen for the first time starts: None = announce no backlog."""
        if not self.pipeline.config.notify_backlog:
            return None
        top = info.uidnext or 1
        return max(1, top - self.pipeline.config.backlog_limit)

    async def fetch_and_announce(
        self,
        conn: ImapClient,
        folder: str,
        st: FolderState,
        modseq: int | None,
        uids: tuple[int, ...] | None = None,
    ) -> FolderState:
        """Announce the messages from the cursor on (only ``uids`` among them, when
        a QRESYNC EXAMINE named them)."""
        name = self.account.name
        new = await fetch_new(conn, name, folder, st.uidvalidity, st.uidnext, uids)
        return await self.announce(conn, folder, st, new, modseq)

    async def announce(
        self,
        conn: ImapClient | None,
        folder: str,
        st: FolderState,
        new: list[MessageInfo],
        modseq: int | None,
    ) -> FolderState:
        """Announce ``new`` (ascending by UID), moving the cursor past each one as it
        goes. ``conn`` None: no download (the NOTIFY push, when none is wanted)."""
        name = self.account.name
        cursor = st.uidnext
        for info in new:
            if info.uid < cursor:
                continue
            await self.pipeline.handle(info, conn)
            cursor = info.uid + 1
            self.pipeline.state.save_folder(
                name, folder, FolderState(st.uidvalidity, cursor, st.highestmodseq)
            )
        done = FolderState(
            st.uidvalidity, cursor, modseq if modseq is not None else st.highestmodseq
        )
        self.pipeline.state.save_folder(name, folder, done)
        return done

    # -- IDLE -----------------------------------------------------------------------
    def _idle_body(self, folder: str) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            conn = await self.login()
            try:
                if "IDLE" not in conn.capabilities:
                    await self._poll_loop(conn, (folder,))
                    return
                info = await self.resync(conn, folder)
                self.event("watching", folder=folder, via="idle")
                await self._idle_loop(conn, folder, info.uidvalidity)
            finally:
                conn.abort()

        return body

    def beat(self, conn: ImapClient, **where: object) -> Beat:
        """The heartbeat's view of one idling connection: renew by DONE, abort if dead."""
        a = self.account
        silence = a.server_keepalive + a.grace if a.server_keepalive > 0 else None

        def renew() -> None:
            self.counters.renewals += 1
            beat.renewing()
            conn.write_now(b"DONE\r\n")

        def abort(reason: str) -> None:
            beat.died()
            self.event("dead", reason=reason, **where)
            conn.abort()

        beat = make_beat(
            self.keepalive, renew, abort, lambda: conn.last_heard, a.idle_renew,
            a.response_timeout, silence,
        )  # fmt: skip
        return beat

    async def _idle_loop(self, conn: ImapClient, folder: str, uidvalidity: int) -> None:
        beat = self.beat(conn, folder=folder)
        while True:
            while conn.news:  # including EXISTS heard during the last fetch
                conn.news = False
                st = self.pipeline.state.folder(self.account.name, folder)
                if st is None or st.uidvalidity != uidvalidity:
                    raise ConnectionLost("folder state changed under us; resync")
                await self.fetch_and_announce(conn, folder, st, None)
            await self._idle_once(conn, beat)

    async def _idle_once(self, conn: ImapClient, beat: Beat) -> None:
        """One IDLE, until news (or the heartbeat's renewal) ended it with DONE."""
        tag = conn.next_tag()
        await conn.send(f"{tag} IDLE\r\n".encode("ascii"))
        await conn.wait_continuation()
        beat.restart()
        self.heartbeat.add(beat)
        try:
            await self._idle_round(conn, tag, beat)
        except ConnectionLost:
            beat.died()  # a reset or EOF in answer to a renewal: the NAT forgot us
            raise
        finally:
            self.heartbeat.remove(beat)

    async def _idle_round(self, conn: ImapClient, tag: str, beat: Beat) -> None:
        """Read until IDLE's tagged OK (after our DONE on news, or the heartbeat's)."""
        while True:
            if (conn.news or conn.status_news) and beat.probe_sent is None:
                beat.probe_sent = time.monotonic()
                conn.write_now(b"DONE\r\n")
                self.heartbeat.poke(beat)
            resp = await conn.read(None)  # bounded by the heartbeat
            if isinstance(resp, Tagged):
                if resp.tag == tag:
                    if resp.status != "OK":
                        raise CommandFailed(resp)
                    beat.answered()
                    return
            elif isinstance(resp, Untagged):
                if resp.keyword == "BYE":
                    beat.server_ended()
                conn.check_bye(resp)
                conn.note_news(resp)
                if resp.keyword == "OK" and resp.code is None:  # not [HIGHESTMODSEQ n]
                    self.counters.keepalives += 1

    # -- NOTIFY ---------------------------------------------------------------------
    def _notify_body(self, folders: tuple[str, ...]) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            conn = await self.login()
            try:
                if "NOTIFY" in conn.capabilities:
                    await watch_by_notify(self, conn, folders)  # returns only if refused
                await conn.logout()
            finally:
                conn.abort()

        return body

    # -- polling --------------------------------------------------------------------
    def _poll_body(self, folders: tuple[str, ...]) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            conn = await self.login()
            try:
                await self._poll_loop(conn, folders)
            finally:
                conn.abort()

        return body

    async def _poll_loop(self, conn: ImapClient, folders: tuple[str, ...]) -> None:
        for f in folders:
            await self.resync(conn, f)
            await leave(conn)
            self.event("watching", folder=f, via="poll")
        while True:
            await self._sleep(self.account.poll_interval)
            for f in folders:
                await self._poll_one(conn, f)

    async def _poll_one(self, conn: ImapClient, folder: str) -> None:
        st = self.pipeline.state.folder(self.account.name, folder)
        values = await status(conn, folder)
        if st is not None and values.get("UIDVALIDITY") == st.uidvalidity:
            modseq = values.get("HIGHESTMODSEQ")
            if modseq is not None and modseq == st.highestmodseq:
                return
            if values.get("UIDNEXT", st.uidnext + 1) <= st.uidnext:
                return
        await self.resync(conn, folder)
        await leave(conn)
