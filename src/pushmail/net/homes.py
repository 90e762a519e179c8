"""A home worker for each user: hibernated sessions move to the worker that owns them.

Why: the kernel spreads new connections over the workers at random (``SO_REUSEPORT``),
so a user with ten devices idles in up to ten workers, and every delivery to that
user woke all of them: each read the datagram, asked the store what changed, tried
to claim \\Recent and wrote its share of the lines. At 100,000 sessions over 7
workers that cost 6.4 ms of CPU per delivery against 2.2 ms at 10,000 over 2, and
broadcast deliveries were bound by it. Dovecot's answer is one imap-hibernate
process; ours is one *home* worker per user (``user_id % workers``). A session that
goes to sleep in another worker is sent home: its socket with ``SCM_RIGHTS``, its
``Hibernated`` record as bytes (``encode_record``), over a Unix datagram socket pair
that the supervisor made before forking (``make_channels``; anonymous, so no other
process can reach it). A delivery then wakes one process, whatever the number of
devices; sessions that are awake stay where they are.

What moves: everything the record holds, TLS included when our own record layer
(TLS 1.3) carries the session (its two secrets and sequence numbers); a session still
inside OpenSSL (TLS 1.2) cannot leave its process and stays. A record is moved only
between loop passes with no hint pending for it, and the home re-checks every
adopted record against the store (``Hibernator.adopt``), so a delivery that happens
while a socket is in flight is never missed.

A home that is near its own file-descriptor limit says so in a shared page
(``Loads``) and is sent nothing; a send the channel will not take (full, or too many
descriptors in flight) leaves the session where it is, to be tried again at a later
sweep. Either way the session works exactly as before, only woken by one more
process.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import resource
import socket
import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pushmail.transport.tls_records import Exported

log = logging.getLogger("pushmail.homes")

# Descriptors per datagram (the kernel's SCM_MAX_FD is 253). Also bounds what one
# worker can have in flight to one home, with the channel's queue of 10 datagrams.
MAX_BATCH = 128
# A record this large (thousands of \Recent UIDs) is not worth moving.
MAX_RECORD = 8192
# Bytes of records per datagram (a record is ~70 bytes; ~170 with TLS).
MAX_DATAGRAM = 65536
_VERSION = b"H2"
_HEAD = struct.Struct("<qqQIIHddHIBH")
_TLS = struct.Struct("<BBBQQ")
_LEN = struct.Struct("<I")
_RECV_BYTES = MAX_DATAGRAM + MAX_RECORD + 64  # a batch may end one record past the cap
# A home with more descriptors open than this share of its limit takes no more.
FULL_SHARE = 0.8


@dataclass(slots=True)
class RecordFields:
    """A hibernated session's record, as it travels (see ``Hibernated``)."""

    user_id: int
    mailbox_id: int
    modseq: int
    uidnext: int
    exists: int
    bits: int
    last_activity: float  # CLOCK_MONOTONIC, the same in every process of a machine
    last_write: float
    tag: str
    recent: array[int]
    tls: Exported | None
    keywords: int = 0  # how many of the mailbox's keywords the client was told of


def encode_record(f: RecordFields) -> bytes:
    tag = f.tag.encode()
    recent = f.recent.tobytes()
    parts = [
        _HEAD.pack(
            f.user_id,
            f.mailbox_id,
            f.modseq,
            f.uidnext,
            f.exists,
            f.bits,
            f.last_activity,
            f.last_write,
            len(tag),
            len(f.recent),
            f.tls is not None,
            f.keywords,
        ),
        tag,
        recent,
    ]
    if f.tls is not None:
        suite, rsecret, rseq, wsecret, wseq = f.tls
        name = suite.encode()
        parts += [_TLS.pack(len(name), len(rsecret), len(wsecret), rseq, wseq), name]
        parts += [rsecret, wsecret]
    return b"".join(parts)


def decode_record(data: bytes) -> RecordFields:
    """The inverse of ``encode_record``; ``ValueError`` for anything malformed."""
    try:
        head = _HEAD.unpack_from(data)
        user_id, mailbox_id, modseq, uidnext, exists, bits, act, wrote, ntag, nrec, tls, nkw = head
        pos = _HEAD.size
        raw_tag = data[pos : pos + ntag]
        tag = raw_tag.decode()
        pos += ntag
        recent = array("I")
        recent.frombytes(data[pos : pos + 4 * nrec])
        pos += 4 * nrec
        exported: Exported | None = None
        if tls:
            nsuite, nread, nwrite, rseq, wseq = _TLS.unpack_from(data, pos)
            pos += _TLS.size
            suite = data[pos : pos + nsuite].decode()
            pos += nsuite
            rsecret = data[pos : pos + nread]
            wsecret = data[pos + nread : pos + nread + nwrite]
            pos += nread + nwrite
            exported = (suite, rsecret, rseq, wsecret, wseq)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed record: {exc}") from None
    if pos != len(data) or len(raw_tag) != ntag or len(recent) != nrec:
        raise ValueError("record length does not match its fields")
    return RecordFields(
        user_id, mailbox_id, modseq, uidnext, exists, bits, act, wrote, tag, recent, exported, nkw
    )


def encode_batch(records: Sequence[bytes]) -> bytes:
    return _VERSION + b"".join(_LEN.pack(len(r)) + r for r in records)


def decode_batch(data: bytes) -> list[RecordFields]:
    """Every record of one datagram; ``ValueError`` if any is malformed."""
    if not data.startswith(_VERSION):
        raise ValueError("not a batch of records")
    out = []
    pos = len(_VERSION)
    while pos < len(data):
        if pos + _LEN.size > len(data):
            raise ValueError("truncated batch")
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + n > len(data):
            raise ValueError("truncated record")
        out.append(decode_record(data[pos : pos + n]))
        pos += n
    return out


T = TypeVar("T")


def batches(items: Sequence[tuple[T, bytes]]) -> Iterator[list[tuple[T, bytes]]]:
    """(session, encoded record) pairs in datagram-sized groups: at most MAX_BATCH
    sockets, and no more bytes than MAX_DATAGRAM plus one record."""
    chunk: list[tuple[T, bytes]] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += len(item[1]) + _LEN.size
        if len(chunk) == MAX_BATCH or size >= MAX_DATAGRAM:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


Channel = tuple[socket.socket, socket.socket]  # (the home's end, everyone else's end)


def make_channels(workers: int) -> list[Channel]:
    """One datagram socket pair per worker, made before forking: worker ``i`` reads
    ``[i][0]``; any worker sends to it on ``[i][1]``."""
    out = []
    for _ in range(workers):
        inbox, outbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        inbox.setblocking(False)
        outbox.setblocking(False)
        out.append((inbox, outbox))
    return out


class Loads:
    """One shared page: each worker's open-descriptor count, so that no worker sends
    sessions to a home that could not take them (a received descriptor beyond the
    limit would be closed by the kernel). Made before forking (``MAP_SHARED``)."""

    def __init__(self, workers: int) -> None:
        self._map = mmap.mmap(-1, max(8 * workers, mmap.PAGESIZE))
        self._counts = memoryview(self._map).cast("q")
        self.workers = workers

    def set(self, worker: int, open_fds: int) -> None:
        self._counts[worker] = open_fds

    def get(self, worker: int) -> int:
        return int(self._counts[worker])


def fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(frozen=True)
class HomeLinks:
    """What the supervisor makes before forking and every worker inherits."""

    channels: list[Channel]
    loads: Loads

    @classmethod
    def make(cls, workers: int) -> HomeLinks:
        return cls(make_channels(workers), Loads(workers))

    def close(self) -> None:
        for pair in self.channels:
            for s in pair:
                s.close()


class Homes:
    """This worker's side of the channels: ``send`` records home, ``start`` adopting
    what other workers send here."""

    def __init__(self, worker: int, channels: Sequence[Channel], loads: Loads) -> None:
        self.worker = worker
        self.workers = len(channels)
        self._inbox = channels[worker][0]
        self._outboxes = [pair[1] for pair in channels]
        self._loads = loads
        self._full_at = int(fd_limit() * FULL_SHARE)
        self._adopt: Callable[[list[tuple[RecordFields, int]]], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def home(self, user_id: int) -> int:
        return user_id % self.workers

    def report_load(self, open_fds: int) -> None:
        self._loads.set(self.worker, open_fds)

    def can_take(self, home: int, n: int) -> bool:
        return self._loads.get(home) + n < self._full_at

    def send(self, home: int, records: Sequence[bytes], fds: Sequence[int]) -> bool:
        """One datagram of records and their sockets; False if the channel would not
        take it now (the caller keeps the sessions)."""
        try:
            socket.send_fds(self._outboxes[home], [encode_batch(records)], fds)
        except OSError as exc:  # EAGAIN (full), ETOOMANYREFS (too many in flight), ...
            log.debug("could not send %d sessions to worker %d: %s", len(fds), home, exc)
            return False
        self._loads.set(home, self._loads.get(home) + len(fds))  # until it reports
        return True

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        adopt: Callable[[list[tuple[RecordFields, int]]], None],
    ) -> None:
        """Adopt, on ``loop``, the sessions that other workers send here."""
        self._adopt = adopt
        self._loop = loop
        loop.add_reader(self._inbox.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(64):
            try:
                data, fds, flags, _addr = socket.recv_fds(self._inbox, _RECV_BYTES, MAX_BATCH)
            except (BlockingIOError, InterruptedError):
                return
            if flags & socket.MSG_CTRUNC:
                log.error("sessions sent home were cut off (descriptor limit?); closed")
            try:
                records = decode_batch(data)
                if len(records) != len(fds):
                    raise ValueError(f"{len(records)} records for {len(fds)} sockets")
            except ValueError as exc:
                log.error("dropping a malformed batch of sessions: %s", exc)
                for fd in fds:
                    os.close(fd)
                continue
            assert self._adopt is not None
            self._adopt(list(zip(records, fds, strict=True)))

    def close(self) -> None:
        """Stop reading; the channels themselves belong to the supervisor (a worker
        started again reads on, and adopts what was in flight)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._inbox.fileno())
        self._loop = None
