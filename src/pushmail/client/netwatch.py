"""Noticing that the network changed (Linux rtnetlink), to reconnect at once.

A laptop that moves from Wi-Fi to a cable, or a phone whose default route changes,
leaves every IDLE connection dead on the old path; waiting for a keepalive deadline or
a backoff timer to notice wastes minutes. The kernel announces address and route
changes on a netlink socket; any message there (after a short settling delay, since one
change comes as a burst of messages) calls ``on_change``. Where netlink is unavailable
(not Linux, or a sandbox) this is silently a no-op: the deadlines still catch everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

__all__ = ["NetworkMonitor"]

# <linux/rtnetlink.h> multicast groups
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400
_GROUPS = (
    _RTMGRP_LINK
    | _RTMGRP_IPV4_IFADDR
    | _RTMGRP_IPV4_ROUTE
    | _RTMGRP_IPV6_IFADDR
    | _RTMGRP_IPV6_ROUTE
)


class NetworkMonitor:
    def __init__(self, on_change: Callable[[], None], settle: float = 1.0) -> None:
        self._on_change = on_change
        self._settle = settle
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> bool:
        """Listen for changes; False where netlink is not available."""
        family = getattr(socket, "AF_NETLINK", None)
        if family is None:
            return False
        try:
            sock = socket.socket(family, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        except OSError:
            return False
        try:
            sock.bind((0, _GROUPS))
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        except OSError:
            sock.close()
            return False
        self._sock = sock
        return True

    def _readable(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(OSError):
            while self._sock.recv(65536):
                pass
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._settle, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._on_change()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
