"""Counting whole packets on a private link: a network-namespace pair and a raw capture.

Why a namespace and not loopback: loopback's MTU is 65,536, so a 20 KB FETCH is one
segment there and a handful on any real link; and every packet shows up twice on
``lo``. Here the server runs in its own namespace behind a veth pair with MTU 1500
(what a phone's path usually allows), the benchmark is the phone in the root
namespace, and an ``AF_PACKET`` socket on the root end of the pair sees each packet
once: ``PACKET_OUTGOING`` is phone → server (up), everything else server → phone
(down). Only traffic of the test crosses this link.

What is counted per packet is its IP datagram (IP + TCP headers, options included,
+ payload: TLS records, IMAP, HTTP); link framing is not (a cellular link has its own).
veth may hand over a GSO super-packet bigger than the MTU; such a packet is counted as
the MTU-sized segments it stands for, each with its own headers, as a real NIC would
send them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MTU = 1500


class CaptureUnavailable(RuntimeError):
    """No root, no ``ip``, or namespaces are not allowed here."""


@dataclass(frozen=True, slots=True)
class Packet:
    at: float  # time.monotonic() when read
    up: bool  # phone -> server
    wire: int  # IP bytes as sent on an MTU-1500 link (segments counted separately)
    segments: int
    sport: int
    dport: int
    flags: int  # TCP flags byte
    payload: int  # TCP payload bytes


@dataclass(frozen=True, slots=True)
class Tally:
    """Packets and IP bytes in one window, each way."""

    up_bytes: int = 0
    down_bytes: int = 0
    up_packets: int = 0
    down_packets: int = 0

    @property
    def bytes(self) -> int:
        return self.up_bytes + self.down_bytes

    @property
    def packets(self) -> int:
        return self.up_packets + self.down_packets

    def plus(self, other: Tally) -> Tally:
        return Tally(
            self.up_bytes + other.up_bytes,
            self.down_bytes + other.down_bytes,
            self.up_packets + other.up_packets,
            self.down_packets + other.down_packets,
        )

    def scaled(self, factor: float) -> dict[str, float]:
        return {
            "bytes": round(self.bytes * factor, 1),
            "up": round(self.up_bytes * factor, 1),
            "down": round(self.down_bytes * factor, 1),
            "packets": round(self.packets * factor, 2),
        }

    def as_dict(self) -> dict[str, int]:
        return {
            "bytes": self.bytes,
            "up": self.up_bytes,
            "down": self.down_bytes,
            "packets": self.packets,
        }


def parse_frame(frame: bytes, up: bool, at: float) -> Packet | None:
    """An Ethernet frame carrying IPv4/TCP, or None for anything else."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    if ip[9] != 6 or len(ip) < ihl + 20:
        return None
    sport, dport = struct.unpack_from("!HH", ip, ihl)
    thl = (ip[ihl + 12] >> 4) * 4
    flags = ip[ihl + 13]
    headers = ihl + thl
    payload = max(0, total - headers)
    mss = MTU - headers
    segments = max(1, -(-payload // mss))
    wire = payload + segments * headers
    return Packet(at, up, wire, segments, sport, dport, flags, payload)


def tally(packets: Iterable[Packet]) -> Tally:
    up_b = down_b = up_p = down_p = 0
    for p in packets:
        if p.up:
            up_b, up_p = up_b + p.wire, up_p + p.segments
        else:
            down_b, down_p = down_b + p.wire, down_p + p.segments
    return Tally(up_b, down_b, up_p, down_p)


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise CaptureUnavailable(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class NetnsPair:
    """A namespace for the server and a veth pair to it; ``phone_ip`` is ours."""

    tag: str = field(default_factory=lambda: str(os.getpid() % 100000))
    ns: str = ""
    host_if: str = ""
    ns_if: str = ""
    phone_ip: str = ""
    server_ip: str = ""

    def __post_init__(self) -> None:
        n = int(self.tag) % 250 + 1
        self.ns = f"pushcost{self.tag}"
        self.host_if, self.ns_if = f"pcA{self.tag}", f"pcB{self.tag}"
        self.phone_ip, self.server_ip = f"10.213.{n}.1", f"10.213.{n}.2"

    def up(self) -> None:
        if os.geteuid() != 0:
            raise CaptureUnavailable("needs root (network namespaces, raw sockets)")
        try:
            _ip("netns", "add", self.ns)
        except FileNotFoundError as e:
            raise CaptureUnavailable("no `ip` command (iproute2)") from e
        try:
            _ip("link", "add", self.host_if, "mtu", str(MTU), "type", "veth",
                "peer", "name", self.ns_if, "mtu", str(MTU))  # fmt: skip
            _ip("link", "set", self.ns_if, "netns", self.ns)
            _ip("addr", "add", f"{self.phone_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("addr", "add", f"{self.server_ip}/30", "dev", self.ns_if, ns=self.ns)
            _ip("link", "set", self.ns_if, "up", ns=self.ns)
            _ip("link", "set", "lo", "up", ns=self.ns)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the server's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]


class Capture:
    """Reads every TCP packet on one interface in a thread; windows by index."""

    def __init__(self, ifname: str) -> None:
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self._sock.bind((ifname, ETH_P_ALL))
        except (OSError, AttributeError) as e:
            raise CaptureUnavailable(f"raw capture on {ifname}: {e}") from e
        self._sock.settimeout(0.2)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.packets: list[Packet] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65600)
            except TimeoutError:
                continue
            except OSError:
                return
            p = parse_frame(frame, addr[2] == PACKET_OUTGOING, time.monotonic())
            if p is not None:
                with self._lock:
                    self.packets.append(p)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def mark(self) -> int:
        with self._lock:
            return len(self.packets)

    def window(self, start: int, end: int | None = None, port: int | None = None) -> list[Packet]:
        """Packets from mark ``start`` to ``end`` (now), on ``port`` (either side)."""
        with self._lock:
            chosen = self.packets[start:end]
        if port is None:
            return chosen
        return [p for p in chosen if port in (p.sport, p.dport)]

    @contextlib.contextmanager
    def counting(self, port: int, settle: float = 0.25) -> Iterator[list[Packet]]:
        """Collect the packets on ``port`` while the block runs, plus ``settle``
        seconds after it (for the last ACKs, delayed up to 40 ms by Linux)."""
        out: list[Packet] = []
        start = self.mark()
        yield out
        time.sleep(settle)
        out.extend(self.window(start, port=port))
