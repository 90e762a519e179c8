"""Which users' hints a listening process wants, published in a small shared file.

Every process on the bus (``events/unixsock.py``) used to receive every hint. With
seven workers, a delivery then woke six processes that had nobody to tell: since
sleeping sessions live in their user's home worker (``net/homes.py``), a hint
usually concerns one. So each listening process keeps, next to its socket, a file
of counters: one per bucket of user ids (how many of its listeners are for users in
that bucket), and one for listeners of every user (the push engine). A publisher
maps each peer's file read-only and sends a peer only the hints it has a listener
for.

Why no hint is lost: a listener is counted *before* its session reads the store
(a subscription comes first, as everywhere on the bus), and a publisher reads the
counters *after* its commit. Either the session's read sees the commit, or the
count was there before the publisher looked. Both sides cross locks and system
calls in between, which order the memory accesses. A peer whose file is missing,
short or not yet initialised gets every hint, as before; a bucket shared by two
users costs a spurious hint, never a lost one. And whatever is lost all the same is
repaired by the periodic re-check, as for any lost hint (design.md "The store is
the truth; events are hints").

Only the owning process writes its file, on the thread that subscribes.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from pathlib import Path

BUCKETS = 1 << 16  # user ids modulo this; 128 KB of counters per process
SUFFIX = ".interest"
_MAGIC = 0x31494D50  # b"PMI1", written last: a reader never trusts a half-made file
_HEADER = 2  # 32-bit words: magic, listeners of every user
_SIZE = _HEADER * 4 + BUCKETS * 2


def bucket(user_id: int) -> int:
    return user_id & (BUCKETS - 1)


def _views(buffer: bytearray | mmap.mmap) -> tuple[memoryview, memoryview]:
    """The header words and the bucket counters of a counters buffer."""
    whole = memoryview(buffer)
    return whole[: _HEADER * 4].cast("I"), whole[_HEADER * 4 :].cast("H")


class InterestWriter:
    """This process's counters: in memory until ``attach`` puts them in a file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: bytearray | mmap.mmap = bytearray(_SIZE)
        self._header, self._counts = _views(self._buffer)
        self._path: Path | None = None

    def attach(self, path: Path) -> None:
        """Publish the counters at ``path`` (before the process's socket is bound)."""
        with self._lock:
            data = bytes(self._buffer)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, _SIZE)
                mapped = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            finally:
                os.close(fd)
            mapped[4:] = data[4:]  # the counts so far; the magic stays 0 until they are in
            self._release_views()
            self._buffer = mapped
            self._header, self._counts = _views(mapped)
            self._header[0] = _MAGIC
            self._path = path

    def add(self, user_id: int) -> None:
        with self._lock:
            b = bucket(user_id)
            if self._counts[b] < 0xFFFF:
                self._counts[b] += 1
            # A saturated bucket stays saturated: it is then always sent to.

    def remove(self, user_id: int) -> None:
        with self._lock:
            b = bucket(user_id)
            if 0 < self._counts[b] < 0xFFFF:
                self._counts[b] -= 1

    def add_all(self) -> None:
        with self._lock:
            self._header[1] += 1

    def remove_all(self) -> None:
        with self._lock:
            if self._header[1]:
                self._header[1] -= 1

    def close(self) -> None:
        """Remove the file (after the socket: see ``UnixSocketBus.close``)."""
        with self._lock:
            if self._path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._path)
                self._path = None

    def _release_views(self) -> None:
        self._header.release()
        self._counts.release()


class InterestReader:
    """A peer's counters, mapped read-only."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._map = mapped
        self._header, self._counts = _views(mapped)

    @classmethod
    def open(cls, path: Path) -> InterestReader | None:
        """The peer's file, or None when there is none (yet) of the right size."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size != _SIZE:
                return None
            return cls(mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ))
        except OSError:
            return None
        finally:
            os.close(fd)

    def filters(self) -> bool:
        """True when the peer's counters can be trusted to leave hints out: the file is
        initialised and nobody in the peer listens to every user."""
        return self._header[0] == _MAGIC and self._header[1] == 0

    def wants(self, user_id: int) -> bool:
        return self._counts[bucket(user_id)] != 0

    def close(self) -> None:
        self._header.release()
        self._counts.release()
        self._map.close()
