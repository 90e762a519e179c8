"""Change hints across the processes of one machine, with no broker.

Every listening process binds a Unix *datagram* socket in one directory
(``Config.events_dir``); a publisher sends each event to every socket there. A
datagram that a full receiver (EAGAIN) cannot take waits in a per-peer backlog that
the sending process retries from its loop (``pushmail deliver`` retries for a moment
before it exits); a dead receiver (ECONNREFUSED/ENOENT) has its socket file removed.
Hints dropped even so (a backlog past MAX_BACKLOG) are safe to lose: a session that
misses one catches up on its periodic re-check (design.md "The store is the truth;
events are hints").

Each process is sent only the hints it has a listener for, as it says in a small
shared file next to its socket (``events/interest.py``); a process without such a
file gets every hint.

Several events travel in one datagram, separated by newlines, because Linux queues
only ``net.unix.max_dgram_qlen`` (often 10) datagrams per socket: a delivery to a
thousand users must not become a thousand datagrams per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pushmail.events import interest
from pushmail.events.interest import InterestReader, InterestWriter
from pushmail.events.interfaces import Listener, MailboxChanged
from pushmail.events.local import ListenerRegistry
from pushmail.metrics.series import BUS_ERRORS

log = logging.getLogger(__name__)

SUFFIX = ".sock"
MAX_DATAGRAM = 8192  # bytes of one datagram (many events)
LISTING_TTL = 1.0  # seconds a directory listing is trusted
RECV_BATCH = 256  # datagrams read per wake-up, so a flood cannot starve the loop
MAX_BACKLOG = 4096  # datagrams kept per busy peer (about 32 MB at most)
RETRY_DELAY = 0.002  # seconds before a busy peer's backlog is tried again
_SUN_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


def encode_batches(events: Iterable[MailboxChanged]) -> Iterator[bytes]:
    """Newline-joined encoded events, each datagram at most MAX_DATAGRAM bytes."""
    batch: list[bytes] = []
    size = 0
    for event in events:
        data = event.encode()
        if batch and size + len(data) + 1 > MAX_DATAGRAM:
            yield b"\n".join(batch)
            batch, size = [], 0
        batch.append(data)
        size += len(data) + 1
    if batch:
        yield b"\n".join(batch)


def decode_datagram(data: bytes) -> list[MailboxChanged]:
    """Every well-formed event of a datagram; junk lines are skipped (hints)."""
    out = []
    for line in data.split(b"\n"):
        event = MailboxChanged.decode(line)
        if event is not None:
            out.append(event)
    return out


def interest_name(name: str) -> str:
    """The interest file of the peer whose socket is ``name``."""
    return name.removesuffix(SUFFIX) + interest.SUFFIX


def _once(leave: Callable[[], None], uncount: Callable[[], None]) -> Callable[[], None]:
    """An unsubscribe that may be called twice but uncounts once."""
    done = False

    def unsubscribe() -> None:
        nonlocal done
        if not done:
            done = True
            leave()
            uncount()

    return unsubscribe


class _Directory:
    """The events directory: socket addresses (short even for a deep directory)
    and a listing of peers that is refreshed at most once per LISTING_TTL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dir_fd: int | None = None
        self._names: list[str] = []
        self._addresses: dict[str, str] = {}
        self._interests: dict[str, InterestReader | None] = {}
        self._listed_at = -LISTING_TTL

    def address(self, name: str) -> str:
        """``path/name``, or the same file through ``/proc/self/fd`` when the path
        is too long for ``sun_path`` (Linux resolves that magic link). Remembered per
        name: this runs for every peer on every delivery."""
        known = self._addresses.get(name)
        if known is not None:
            return known
        full = str(self.path / name)
        if len(os.fsencode(full)) > _SUN_PATH_MAX:
            if self._dir_fd is None:
                self._dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            full = f"/proc/self/fd/{self._dir_fd}/{name}"
        self._addresses[name] = full
        return full

    def peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._listed_at >= LISTING_TTL:
            try:
                self._names = [n for n in os.listdir(self.path) if n.endswith(SUFFIX)]
            except FileNotFoundError:
                self._names = []
            listed = set(self._names)
            for gone in [n for n in self._addresses if n not in listed]:
                del self._addresses[gone]
            for name, reader in list(self._interests.items()):
                if name not in listed or reader is None:  # gone, or not there yet
                    self._drop_interest(name)
            self._listed_at = now
        return self._names

    def interest(self, name: str) -> InterestReader | None:
        """The peer's interest file, mapped once; None while it has none."""
        if name not in self._interests:
            self._interests[name] = InterestReader.open(self.path / interest_name(name))
        return self._interests[name]

    def _drop_interest(self, name: str) -> None:
        reader = self._interests.pop(name, None)
        if reader is not None:
            reader.close()

    def forget(self, name: str) -> None:
        """A peer is gone: remove its files and re-list next time."""
        for gone in (name, interest_name(name)):
            with contextlib.suppress(OSError):
                os.unlink(self.path / gone)
        self._drop_interest(name)
        self._listed_at = -LISTING_TTL

    def close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
        for name in list(self._interests):
            self._drop_interest(name)


class UnixSocketPublisher:
    """Sends events to every listening process; no event loop needed (for the
    ``pushmail deliver`` command). Safe to call from several threads."""

    def __init__(self, events_dir: Path, own_name: str | None = None) -> None:
        self._dir = _Directory(events_dir)
        self._own = own_name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        # Datagrams a busy peer could not take yet (its queue holds only
        # net.unix.max_dgram_qlen datagrams, 10 by default), in order, per peer.
        self._backlog: dict[str, list[bytes]] = {}

    def publish(self, event: MailboxChanged) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        batch = list(events)
        if not batch:
            return
        everything: list[bytes] | None = None
        with self._lock:
            for name in self._dir.peers():
                if name == self._own:
                    continue
                wanted = self._interest_of(name, batch)
                if wanted is None:
                    if everything is None:
                        everything = list(encode_batches(batch))
                    payloads = everything
                elif wanted:
                    payloads = list(encode_batches(wanted))
                else:
                    continue
                queued = self._backlog.get(name)
                if queued is not None:  # keep the order: behind what waits
                    queued.extend(payloads)
                    self._trim(name, queued)
                else:
                    self._send(name, payloads)

    def _interest_of(self, name: str, batch: list[MailboxChanged]) -> list[MailboxChanged] | None:
        """The events of ``batch`` that peer ``name`` listens for; None for all."""
        reader = self._dir.interest(name)
        if reader is None or not reader.filters():
            return None
        return [e for e in batch if reader.wants(e.user_id)]

    def _send(self, name: str, payloads: list[bytes]) -> None:
        """Send in order; what a full peer does not take waits in the backlog."""
        sent = 0
        try:
            address = self._dir.address(name)
            for payload in payloads:
                self._sock.sendto(payload, address)
                sent += 1
        except (BlockingIOError, InterruptedError):
            rest = payloads[sent:]
            self._backlog[name] = rest
            self._trim(name, rest)
        except (ConnectionRefusedError, FileNotFoundError):
            self._backlog.pop(name, None)
            self._dir.forget(name)  # its process is gone
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                log.debug("events: no buffer for %s, hint dropped", name)
                BUS_ERRORS.labels("dropped").inc()
            else:
                log.warning("events: cannot send to %s: %s", name, exc)
                BUS_ERRORS.labels("send").inc()

    def _trim(self, name: str, queued: list[bytes]) -> None:
        if len(queued) > MAX_BACKLOG:
            BUS_ERRORS.labels("dropped").inc(len(queued) - MAX_BACKLOG)
            del queued[: len(queued) - MAX_BACKLOG]
            log.warning("events: %s is far behind; oldest hints dropped (re-check repairs)", name)

    def retry(self) -> bool:
        """Try the backlog again; True while some of it still waits."""
        with self._lock:
            for name, queued in list(self._backlog.items()):
                del self._backlog[name]
                self._send(name, queued)
            return bool(self._backlog)

    def flush(self, timeout: float) -> None:
        """Retry the backlog for up to ``timeout`` seconds (for a one-shot process
        such as ``pushmail deliver``, which has no event loop to retry later)."""
        deadline = time.monotonic() + timeout
        while self.retry() and time.monotonic() < deadline:
            time.sleep(0.005)

    def directory(self) -> _Directory:
        return self._dir

    def close(self) -> None:
        self._sock.close()
        self._dir.close()


class UnixSocketBus:
    """``events.interfaces.Bus`` across the processes of one machine.

    ``publish`` dispatches to this process's listeners and sends to the others;
    events from other processes arrive on the loop (``start``). Listeners always run
    on the loop's thread once started: a publish from another thread (the store
    thread, after a delivery) is handed over with ``call_soon_threadsafe``.
    """

    def __init__(self, events_dir: Path) -> None:
        self._name = f"{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"
        self._publisher = UnixSocketPublisher(events_dir, own_name=self._name)
        self._registry = ListenerRegistry()
        self._interest = InterestWriter()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._retrying = False

    @property
    def socket_path(self) -> Path:
        return self._publisher.directory().path / self._name

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind this process's socket and read it on ``loop``."""
        directory = self._publisher.directory()
        directory.path.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        # The interest file first: a publisher that finds the socket finds it too.
        self._interest.attach(directory.path / interest_name(self._name))
        sock.bind(directory.address(self._name))
        self._sock = sock
        self._loop = loop
        self._loop_thread = threading.get_ident()
        loop.add_reader(sock.fileno(), self._on_readable)

    def subscribe(self, user_id: int, listener: Listener) -> Callable[[], None]:
        """Listen to one user's events; counted in the interest file before this
        returns, so before the caller reads the store."""
        self._interest.add(user_id)
        leave = self._registry.subscribe(user_id, listener)
        return _once(leave, lambda: self._interest.remove(user_id))

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        self._interest.add_all()
        leave = self._registry.subscribe_all(listener)
        return _once(leave, self._interest.remove_all)

    def publish(self, event: MailboxChanged) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Iterable[MailboxChanged]) -> None:
        batch = list(events)
        self._dispatch_local(batch)
        self._publisher.publish_many(batch)
        if self._publisher.retry():
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        """Retry a full peer's backlog from the loop, soon, until it drains."""
        loop = self._loop
        if loop is None or self._retrying:
            return
        self._retrying = True
        if threading.get_ident() == self._loop_thread:
            loop.call_later(RETRY_DELAY, self._retry)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.call_later, RETRY_DELAY, self._retry)

    def _retry(self) -> None:
        self._retrying = False
        if self._sock is not None and self._publisher.retry():
            self._schedule_retry()

    def listener_count(self, user_id: int | None = None) -> int:
        return self._registry.listener_count(user_id)

    def on_resync(self, hook: Callable[[frozenset[int] | None], None]) -> Callable[[], None]:
        """Never called: a subscription is live once ``subscribe`` returns (the
        interest file is written first) and there is no connection to lose."""
        return _nothing

    def _dispatch_local(self, events: list[MailboxChanged]) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._dispatch(events)
            return
        with contextlib.suppress(RuntimeError):  # loop closed: nobody to tell
            loop.call_soon_threadsafe(self._dispatch, events)

    def _dispatch(self, events: list[MailboxChanged]) -> None:
        for event in events:
            self._registry.dispatch(event)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(RECV_BATCH):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("events: receive failed: %s", exc)
                BUS_ERRORS.labels("receive").inc()
                return
            self._dispatch(decode_datagram(data))

    def close(self) -> None:
        """Stop listening and remove this process's socket file."""
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                os.unlink(self.socket_path)
        self._interest.close()
        self._publisher.close()


def _nothing() -> None:
    pass
