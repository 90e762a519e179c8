"""Idle connections that cost almost nothing: in-process hibernation.

Dovecot moves an idling client to a separate imap-hibernate process that keeps only
the socket and a few numbers. We do the same inside each worker: when a plaintext
connection enters IDLE with nothing buffered, its asyncio transport, protocol,
session, fragmentizer and sequence-number array are dropped. What remains is a
``Hibernated`` record (a dozen slots) holding a duplicate of the socket's file
descriptor, registered in one epoll set per worker that the event loop watches.

- New mail while hibernated: the records of one mailbox are woken together, the
  store is asked once per (mailbox, MODSEQ) group on the store thread, and when the
  change is only new messages the ``* N EXISTS`` line is written straight to the
  descriptor. No object is rebuilt. Anything else (flag changes, expunges, or a
  socket that will not take the bytes) rehydrates the connection.
- The client sends anything (``DONE``): the connection is rehydrated — the session is
  rebuilt from the record, and its sequence-number map from the store as of the
  record's (UIDNEXT, MODSEQ): the store keeps expunged UIDs with their MODSEQ, so the
  view the client holds can always be recomputed exactly.
- Keepalives and autologout are written by the housekeeper's sweep directly.
- With several workers, a record whose user lives in another worker moves there
  (``net/homes.py``): ``fields``/``restore`` are its two ends, ``adopt`` the arrival.

TLS connections served by our own TLS layer (``transport/tls_layer.py``) hibernate too: the
record keeps their ``TlsState`` (after a TLS 1.3 handshake, two traffic secrets and
sequence numbers; for TLS 1.2, the OpenSSL session and two empty memory BIOs), and
lines written while hibernated are encrypted with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import time
from array import array
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, cast

from pushmail.imap.connection import BYE_AUTOLOGOUT, KEEPALIVE
from pushmail.imap.selected import SelectedView, flags_lines, new_mail_lines
from pushmail.metrics import wakeup
from pushmail.net.hibernated import LOOPBACK, READONLY, REV2, Hibernated, last_words, rebuild_view
from pushmail.net.homes import MAX_RECORD, Homes, RecordFields, batches, encode_record
from pushmail.net.imap_login import IdleConn
from pushmail.net.keepalive import keepalive_due
from pushmail.store.interfaces import Changes, Store, StoreUnavailable, User
from pushmail.transport.tls_layer import TlsLayer

if TYPE_CHECKING:
    from pushmail.net.imap_login import ImapContext

# Makes the connection a hibernated record resumes as (``ImapConnection``): given,
# not imported, so that the driver and hibernation do not import each other.
NewConnection = Callable[["ImapContext", bool], IdleConn]

log = logging.getLogger("pushmail.hibernate")

_EPOLL_FLAGS = select.EPOLLIN | select.EPOLLRDHUP
_GONE = select.EPOLLHUP | select.EPOLLERR

# The housekeeping wheel's slot width, in seconds of wall clock (Hibernator._file).
_WHEEL_SECONDS = 1.0
# Seconds a record waits before it moves to its home worker (Hibernator._leave).
_MOVE_DELAY = 0.05


def can_hibernate(conn: IdleConn) -> bool:
    """Only a plain connection in IDLE with no state beyond the record's."""
    t = conn.transport
    s = conn.session
    v = s.view
    if t is None:
        return False
    tls = t.get_extra_info("tls_state")
    if s.secure and (tls is None or tls.pending_input()):
        return False  # asyncio's own TLS (not ours), or ciphertext not yet read
    return (
        not t.is_closing()
        and t.get_write_buffer_size() == 0
        and conn.quiet_input()
        and s.user is not None
        and v is not None
        and not v.pending_expunge
        and not s.saved_search
        and s.notify is None
        and not s.compressed
    )


class Hibernator:
    """One per worker: the epoll set of hibernated sockets and their records."""

    def __init__(
        self, ctx: ImapContext, loop: asyncio.AbstractEventLoop, new_connection: NewConnection
    ) -> None:
        self._ctx = ctx
        self._new_connection = new_connection
        self._loop = loop
        self._epoll = select.epoll()
        self._records: dict[int, Hibernated] = {}
        self._pending: dict[int, Hibernated] = {}  # woken, awaiting one batched check
        self._flush_scheduled = False
        self._tasks: set[asyncio.Future[None]] = set()
        self.closed_by_peer = 0  # sockets dropped asleep: the client had gone
        # Records by the wall-clock second at which they next need housekeeping (a
        # keepalive or autologout): a sweep looks only at those due, not at all of
        # them (at 14,000 records a worker, a full pass took ~9 ms every 5 s, in
        # every worker at the same moment). Entries are fds; one whose record has
        # gone, or has been filed again elsewhere (``wheel_slot``), is skipped.
        self._wheel: dict[int, list[int]] = {}
        self._timing: tuple[float, float, float] | None = None  # see sweep()
        # Home workers (net/homes.py): records to send home when _MOVE_DELAY has
        # passed, and those that could not go yet (tried again at each sweep).
        self.homes: Homes | None = None
        self._leaving: dict[int, Hibernated] = {}
        self._away: set[int] = set()
        self.moved_out = 0
        self.adopted = 0
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __len__(self) -> int:
        return len(self._records)

    def counts(self) -> dict[str, int]:
        """For the stats file: records held, sockets found closed asleep, sessions
        sent to and received from home workers."""
        return {
            "hibernated": len(self._records),
            "hibernated_closed_by_peer": self.closed_by_peer,
            "moved_home": self.moved_out,
            "adopted": self.adopted,
        }

    # -- going to sleep -----------------------------------------------------------
    def hibernate(self, conn: IdleConn) -> bool:
        if not can_hibernate(conn):
            return False
        transport = conn.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        fd = os.dup(sock.fileno())
        os.set_blocking(fd, False)
        rec = Hibernated(fd, conn, self)
        conn.detach()  # leaves the hub, drops the transport; our dup keeps the socket
        self._register(rec)
        homes = self.homes
        if homes is not None and homes.home(rec.user_id) != homes.worker:
            self._leave(rec)
        return True

    def _register(self, rec: Hibernated) -> None:
        self._records[rec.fd] = rec
        self._file(rec)
        self._epoll.register(rec.fd, _EPOLL_FLAGS)
        self._ctx.hub.add(rec.user_id, rec.mailbox_id, rec)

    # -- going home (net/homes.py) ------------------------------------------------
    def _leave(self, rec: Hibernated) -> None:
        """Send ``rec`` to its user's home worker shortly (it is served here until
        then), so that in a connect storm many travel in one datagram and are
        re-checked by the home in one store read."""
        if not self._leaving:
            self._loop.call_later(_MOVE_DELAY, self._move)
        self._leaving[rec.fd] = rec

    def _move(self) -> None:
        homes = self.homes
        leaving, self._leaving = self._leaving, {}
        if homes is None:
            return
        groups: dict[int, list[tuple[Hibernated, bytes]]] = {}
        for fd, rec in leaving.items():
            if self._records.get(fd) is not rec:
                continue  # woken, or gone
            home = homes.home(rec.user_id)
            if home == homes.worker:
                continue
            if fd in self._pending or not homes.can_take(home, 1):
                self._away.add(fd)  # a hint is being checked here, or home is full
                continue
            f = rec.fields()
            data = encode_record(f) if f is not None else None
            if data is not None and len(data) <= MAX_RECORD:
                groups.setdefault(home, []).append((rec, data))
        for home, items in groups.items():
            for chunk in batches(items):
                recs = [rec for rec, _ in chunk]
                for rec in recs:
                    self._unregister(rec)
                if homes.send(home, [data for _, data in chunk], [r.fd for r in recs]):
                    for rec in recs:
                        os.close(rec.fd)  # the one in flight is home's now
                    self.moved_out += len(recs)
                else:
                    for rec in recs:
                        self._register(rec)
                        self._away.add(rec.fd)

    def adopt(self, items: list[tuple[RecordFields, int]]) -> None:
        """Sessions sent here by other workers: register them as our own, then
        compare each with the store, since a hint for one may have come while its
        socket was in flight (no worker had it in its hub then)."""
        recs = []
        for f, fd in items:
            try:
                rec = Hibernated.restore(fd, self, f)
            except ValueError as exc:
                log.error("a session sent home could not be restored: %s", exc)
                os.close(fd)
                continue
            self._register(rec)
            recs.append(rec)
        self.adopted += len(recs)
        if recs:
            self._spawn(self._recheck_records(recs))

    # -- waking -------------------------------------------------------------------
    def _on_ready(self) -> None:
        for fd, events in self._epoll.poll(0, 1024):
            rec = self._records.get(fd)
            if rec is None:
                continue
            if events & _GONE or (events & select.EPOLLRDHUP and _at_eof(fd)):
                # The client went away (a reset, or FIN with nothing left to read):
                # nothing to resume. Rebuilding a session just to read EOF would cost
                # a store read each, and many clients leave at once (a NAT reboot,
                # the end of a benchmark), so the socket is simply closed.
                self.closed_by_peer += 1
                self._drop(rec)
            else:
                self._resume(rec, None)

    def wake(self, rec: Hibernated) -> None:
        """A hint for this record's mailbox; checked in one batch per loop pass."""
        if self._records.get(rec.fd) is rec:  # not a later record on a reused fd
            self._pending[rec.fd] = rec
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch = list(self._pending.values())
        self._pending.clear()
        if batch:
            self._spawn(self._check(batch))

    async def _check(self, batch: list[Hibernated]) -> None:
        keys = {(r.mailbox_id, r.modseq) for r in batch}
        # Messages that arrived since a session last looked are \Recent for exactly
        # one session (RFC 3501 §2.3.2): one claim per mailbox with new mail, given
        # to the first read-write record of that mailbox in this batch. A claim never
        # waits for the write lock: under a burst of deliveries that would hold every
        # wake-up behind an fsync; unclaimed messages stay for the next claimer.
        writable = {r.mailbox_id for r in batch if not r.bits & READONLY}

        def job(store: Store) -> tuple[dict[tuple[int, int], Changes | None], dict[int, int]]:
            out: dict[tuple[int, int], Changes | None] = {}
            for mid, modseq in keys:
                try:
                    out[(mid, modseq)] = store.changes_since(mid, modseq)
                except StoreUnavailable:
                    raise  # not the mailbox's fault: the sessions sleep on
                except Exception:  # a deleted mailbox: the session must resume
                    out[(mid, modseq)] = None
            fresh = {mid for (mid, _), ch in out.items() if ch is not None and ch.changed}
            floors = {}
            for mid in fresh & writable:
                with contextlib.suppress(Exception):
                    floors[mid] = store.claim_recent(mid, wait=False)
            return out, floors

        try:
            found, floors = await self._ctx.runner.read(job)
        except StoreUnavailable as exc:  # asleep they stay; the next re-check retries
            log.warning("hibernated sessions not checked: %s", exc)
            return
        for rec in batch:
            if self._records.get(rec.fd) is not rec:
                continue
            ch = found.get((rec.mailbox_id, rec.modseq))
            floor = None if rec.bits & READONLY else floors.pop(rec.mailbox_id, None)
            if ch is None or not self._apply_new_only(rec, ch, floor):
                self._resume(rec, b"")
            elif ch.changed:  # written straight to the socket: the client is told
                wakeup.told(rec.user_id, rec.mailbox_id)

    def _apply_new_only(self, rec: Hibernated, ch: Changes, floor: int | None) -> bool:
        r"""Report new messages without waking; False if more than that changed.
        New UIDs at or above ``floor`` (our claim) become \Recent for this session.
        Keywords the new mail defined are announced first (RFC 3501 §7.2.6), so a
        later FETCH of their flags shows none the client was not told of."""
        if ch.expunged or any(m.uid < rec.uidnext for m in ch.changed):
            return False
        new = [m for m in ch.changed if m.uid >= rec.uidnext]
        rec.modseq = max(rec.modseq, ch.highestmodseq)
        out = b""
        if len(ch.keywords) > rec.keywords:
            rec.keywords = len(ch.keywords)
            lines = flags_lines(ch.keywords, bool(rec.bits & READONLY))
            out = b"".join(b"* " + line + b"\r\n" for line in lines)
        if new:
            if floor is not None:
                rec.recent = rec.recent + array("I", (m.uid for m in new if m.uid >= floor))
            rec.exists += len(new)
            rec.uidnext = max(rec.uidnext, new[-1].uid + 1, ch.uidnext)
            lines = new_mail_lines(rec.exists, len(rec.recent), bool(rec.bits & REV2))
            out += b"".join(b"* " + line + b"\r\n" for line in lines)
        if out:
            self._send(rec, out)
        return True

    def _send(self, rec: Hibernated, data: bytes) -> None:
        """Write ``data`` (encrypted for TLS) now; what the socket does not take at
        once goes out through a resumed connection, so nothing is lost or reordered
        (and a TLS record, once made, is sent exactly as made)."""
        out = rec.tls.encrypt(data) if rec.tls is not None else data
        try:
            n = os.write(rec.fd, out)
        except BlockingIOError:
            n = 0
        except OSError:
            self._drop(rec)
            return
        rec.last_write = time.monotonic()
        if n != len(out):
            self._resume(rec, out[n:])

    def _resume(self, rec: Hibernated, pending: bytes | None) -> None:
        """Give the socket back to a full connection. ``pending`` is wire bytes
        (ciphertext under TLS) to send first; ``b""`` asks for a refresh after."""
        self._unregister(rec)
        self._spawn(self._rehydrate(rec, pending))

    async def _rehydrate(self, rec: Hibernated, pending: bytes | None) -> None:
        def job(store: Store) -> tuple[User, SelectedView] | None:
            user = store.get_user_by_id(rec.user_id)
            box = store.get_mailbox_by_id(rec.mailbox_id)
            if user is None or box is None:
                return None
            return user, rebuild_view(store, rec, box.name, box.uidvalidity)

        sock = socket.socket(fileno=rec.fd)
        try:
            found = await self._ctx.runner.read(job)
            if found is None:
                sock.close()
                return
            user, view = found
            conn = self._new_connection(self._ctx, rec.tls is not None)
            conn.resume_idle(rec.tag, user, view, rec.bits & LOOPBACK != 0, rec.last_activity)
            proto = cast(asyncio.Protocol, conn)  # an ImapConnection: a Protocol too
            if rec.tls is not None and self._ctx.tls is not None:
                proto = TlsLayer(proto, self._ctx.tls, state=rec.tls)
            raw, _ = await self._loop.connect_accepted_socket(lambda: proto, sock)
        except Exception:
            log.exception("could not resume a hibernated connection")
            sock.close()
            return
        if pending:
            raw.write(pending)
        elif pending == b"":
            conn.wake()

    def _unregister(self, rec: Hibernated) -> None:
        self._records.pop(rec.fd, None)
        self._pending.pop(rec.fd, None)
        self._leaving.pop(rec.fd, None)
        self._away.discard(rec.fd)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(rec.fd)
        self._ctx.hub.remove(rec.user_id, rec.mailbox_id, rec)

    def _drop(self, rec: Hibernated) -> None:
        self._unregister(rec)
        with contextlib.suppress(OSError):
            os.close(rec.fd)

    # -- housekeeping -------------------------------------------------------------
    def sweep(self, now: float, keepalive: float, autologout: float, wall: float) -> None:
        """Keepalives (on the schedule of ``net/keepalive.py``; ``wall`` is the wall
        clock at monotonic ``now``) and autologout for hibernated sessions: those
        whose wheel slot has come."""
        homes = self.homes
        if homes is not None:
            homes.report_load(len(self._records) + len(self._ctx.connections))
            away, self._away = self._away, set()
            for fd in away:
                if fd in self._records:
                    self._leave(self._records[fd])
        # Filing uses the wall-clock offset rounded to a second, so clock slew does not
        # refile everything; whether a record is due is decided with the exact one.
        timing = (keepalive, autologout, round(wall - now))
        if timing != self._timing:  # first sweep, new settings, or the clock was set
            self._timing = timing
            self._wheel = {}
            for each in self._records.values():
                self._file(each)
        offset = wall - now
        current = int(wall // _WHEEL_SECONDS)
        for slot in [s for s in self._wheel if s <= current]:
            for fd in self._wheel.pop(slot):
                rec = self._records.get(fd)
                if rec is None or rec.wheel_slot != slot:
                    continue  # gone, or filed again since
                if now - rec.last_activity > autologout:
                    with contextlib.suppress(OSError):
                        os.write(rec.fd, last_words(rec, BYE_AUTOLOGOUT))
                    self._drop(rec)
                    continue
                if keepalive and wall >= keepalive_due(
                    rec.last_write + offset, rec.user_id, keepalive
                ):
                    self._send(rec, KEEPALIVE)
                if self._records.get(rec.fd) is rec:
                    self._file(rec)

    def _file(self, rec: Hibernated) -> None:
        """Put ``rec`` in the wheel at its next housekeeping time. Writes only move
        that time later, so a record sent mail while asleep is not filed again: its
        old slot comes first and files it anew."""
        if self._timing is None:
            slot = 0  # before the first sweep: looked at by it
        else:
            keepalive, autologout, offset = self._timing
            due = rec.last_activity + offset + autologout
            if keepalive:
                due = min(due, keepalive_due(rec.last_write + offset, rec.user_id, keepalive))
            slot = int(due // _WHEEL_SECONDS)
        rec.wheel_slot = slot
        self._wheel.setdefault(slot, []).append(rec.fd)

    async def recheck(self, share: int, of: int) -> None:
        """Repair lost hints: compare the records of one share of the mailboxes
        (``mailbox_id % of == share``) with the store's HIGHESTMODSEQ, one cheap
        lookup per mailbox, and wake those that are behind."""
        recs = [r for r in self._records.values() if r.mailbox_id % of == share]
        await self._recheck_records(recs)

    async def _recheck_records(self, recs: list[Hibernated]) -> None:
        boxes = {r.mailbox_id for r in recs}
        if not boxes:
            return

        try:
            highest = await self._ctx.runner.read(lambda store: store.highest_modseqs(boxes))
        except StoreUnavailable as exc:
            log.warning("re-check of hibernated sessions skipped: %s", exc)
            return
        for rec in recs:
            # A mailbox that is gone (no entry) wakes its sessions too: they resume,
            # find it missing, and say so.
            if highest.get(rec.mailbox_id, -1) != rec.modseq:
                self.wake(rec)

    def records(self) -> Iterable[Hibernated]:
        return self._records.values()

    def close(self, farewell: bytes) -> None:
        for rec in list(self._records.values()):
            with contextlib.suppress(OSError):
                os.write(rec.fd, last_words(rec, farewell))
            self._drop(rec)
        if self.homes is not None:
            self.homes.close()
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()


def _at_eof(fd: int) -> bool:
    """True if the peer closed and sent nothing more (a DONE or LOGOUT still in the
    socket must be answered by a resumed session)."""
    sock = socket.socket(fileno=fd)
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.detach()
