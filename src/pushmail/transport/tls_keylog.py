"""The TLS 1.3 traffic secrets of each handshake, taken from OpenSSL as it makes them.

To hand a session from OpenSSL to our record layer (``transport/tls_records.py``) we need
its two application traffic secrets. Python 3.11's ``ssl`` offers them in one way
only: ``SSLContext.keylog_filename``, OpenSSL's key log written to a file (the
NSS key log format: ``LABEL <client random hex> <secret hex>``). Here that file is an
anonymous in-memory file (``memfd_create``), never on disk. OpenSSL writes to it, and
flushes, inside the handshake call that derives a secret, on the thread making the
call; so right after each ``do_handshake()`` the new lines are there to be read, and
they are matched to the connection by its ClientHello random. The file is emptied
whenever everything in it has been read, so secrets stay in it only for the length
of a handshake step.

A context with a key log must serve only connections whose handshakes go through
``TlsState`` (which reads the lines); the IMAP listeners get a context of their own.
"""

from __future__ import annotations

import os
import ssl
import weakref

_WANTED = {b"CLIENT_TRAFFIC_SECRET_0", b"SERVER_TRAFFIC_SECRET_0"}


class KeyLog:
    """The key log of one context in one process."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = weakref.ref(context)
        self._pid = 0
        self._fd = -1
        self._open()

    def _open(self) -> None:
        """A fresh file: also after a fork, so that workers never share one."""
        context = self._context()
        if context is None:
            return
        if self._fd >= 0:  # the parent's, inherited: this process must not read it
            os.close(self._fd)
        self._fd = os.memfd_create("pushmail-tls-keylog", os.MFD_CLOEXEC)
        self._pid = os.getpid()
        context.keylog_filename = f"/proc/self/fd/{self._fd}"

    def claim(self) -> None:
        """Make sure this process writes to a file of its own (call before a
        handshake starts: after a fork, the inherited file is the parent's)."""
        if self._pid != os.getpid():
            self._open()

    def take(self) -> dict[bytes, dict[bytes, bytes]]:
        """Lines written since the last call: client random → {label: secret}."""
        self.claim()
        size = os.fstat(self._fd).st_size
        if size == 0:
            return {}
        data = os.pread(self._fd, size, 0)
        os.ftruncate(self._fd, 0)
        found: dict[bytes, dict[bytes, bytes]] = {}
        for line in data.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in _WANTED:
                try:
                    found.setdefault(bytes.fromhex(parts[1].decode()), {})[parts[0]] = (
                        bytes.fromhex(parts[2].decode())
                    )
                except ValueError:
                    continue
        return found


_LOGS: weakref.WeakKeyDictionary[ssl.SSLContext, KeyLog] = weakref.WeakKeyDictionary()


def enable(context: ssl.SSLContext) -> None:
    """Let sessions of ``context`` leave OpenSSL after a TLS 1.3 handshake."""
    if context not in _LOGS and hasattr(os, "memfd_create"):
        _LOGS[context] = KeyLog(context)


def keylog_of(context: ssl.SSLContext) -> KeyLog | None:
    return _LOGS.get(context)
