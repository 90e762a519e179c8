"""The measured steps of ``push_cost.py``, one function each, every one a window of
captured packets on the phone's own connection (its local port), so nothing else on
the link (LMTP in, alerts out, other connections) is counted in it.

A window ends ``SETTLE`` seconds after the step's last line was read, so the ACKs that
close it are in. A window that a server keepalive (``* OK Still here``) fell into is
measured again, except the one that measures the keepalive itself.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from typing import Any

from cost_rig import FRONT, IMAPS, PASSWORD, RECEIVERS, USER, Rig, message
from wire_capture import Capture, Tally, tally
from wire_client import WireClient, tls_context

SETTLE = 0.3
HEADER_FETCH = (
    "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT LIST-ID DATE MESSAGE-ID)])"
)
_EXISTS = re.compile(rb"^\* (\d+) EXISTS")
_CODE = re.compile(rb"\[(UIDVALIDITY|HIGHESTMODSEQ) (\d+)\]")


def _cap(rig: Rig) -> Capture:
    assert rig.capture is not None
    return rig.capture


def counted(rig: Rig, c: WireClient, step: Callable[[], object], tries: int = 3) -> Tally:
    """Run ``step`` on ``c`` and count its packets; again if a keepalive fell in."""
    cap = _cap(rig)
    for _ in range(tries):
        before = c.still_here
        start = cap.mark()
        step()
        time.sleep(SETTLE)
        got = tally(cap.window(start, port=c.local_port))
        if c.still_here == before:
            return got
    return got


class Phone:
    """The phone's state between steps: one TLS context (for tickets), the folder's
    QRESYNC state, and a count of messages delivered."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.ctx = tls_context()
        self.uidvalidity = 0
        self.modseq = 0
        self.delivered = 0

    def connect(self, port: int = IMAPS, session: object = None) -> WireClient:
        return WireClient(self.rig.pair.server_ip, port, self.ctx, session)

    def setup(self, c: WireClient, auth: str = "login", compress: bool = False) -> None:
        """What a client does after the greeting to be idling again: log in, ENABLE
        QRESYNC, SELECT with QRESYNC, IDLE."""
        if auth == "login":
            c.login(USER, PASSWORD)
        else:
            c.authenticate_plain(USER, PASSWORD)
        if compress:
            c.compress()
        c.command("ENABLE QRESYNC")
        if self.uidvalidity:
            lines = c.command(f"SELECT INBOX (QRESYNC ({self.uidvalidity} {self.modseq}))")
        else:
            lines = c.command("SELECT INBOX")
        self.note(lines)
        c.idle()

    def note(self, lines: list[bytes]) -> None:
        for line in lines:
            if (m := _CODE.search(line)) is not None:
                if m.group(1) == b"UIDVALIDITY":
                    self.uidvalidity = int(m.group(2))
                else:
                    self.modseq = int(m.group(2))

    def refresh(self) -> None:
        """Learn the folder's current state (not counted), so that a measured
        reconnect resyncs nothing: what it costs is the reconnect itself."""
        c = self.connect()
        c.login(USER, PASSWORD)
        c.command("ENABLE QRESYNC")
        self.note(c.command("EXAMINE INBOX"))
        c.logout()

    def deliver(self, size: int = 1500) -> None:
        self.delivered += 1
        self.rig.deliver(message(size, self.delivered))


# ------------------------------------------------------------------ keepalive cycles


def median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median byte count, and every run's count."""
    good = sorted((r for r in rows if "bytes" in r), key=lambda r: float(r["bytes"]))
    if not good:
        return rows[0]
    return {**good[len(good) // 2], "runs": [r["bytes"] for r in rows if "bytes" in r]}


def keepalives(phone: Phone, tcp_probes: int, reps: int = 1) -> dict[str, object]:
    rig = phone.rig
    c = phone.connect()
    phone.setup(c)
    runs: dict[str, list[dict[str, Any]]] = {}
    cap = _cap(rig)
    for _ in range(reps):
        time.sleep(SETTLE)
        start = cap.mark()
        c.wait_for(b"Still here", rig.keepalive * 2 + 10)
        time.sleep(SETTLE)
        row = tally(cap.window(start, port=c.local_port)).as_dict()
        runs.setdefault("server_still_here", []).append(row)
        row = counted(rig, c, lambda: (c.done(), c.idle())).as_dict()
        runs.setdefault("client_done_idle", []).append(row)
        runs.setdefault("tcp_keepalive_probe", []).append(_tcp_probe(rig, c, tcp_probes))
        c.done()
        row = counted(rig, c, lambda: c.command("NOOP")).as_dict()
        runs.setdefault("noop", []).append(row)
        c.idle()
    c.done()
    c.logout()
    return {name: median(rows) for name, rows in runs.items()}


def _tcp_probe(rig: Rig, c: WireClient, probes: int) -> dict[str, object]:
    """Let the kernel send ``probes`` TCP keepalive probes 1 s apart; per probe cost."""
    cap = _cap(rig)
    for _ in range(3):
        start = cap.mark()
        raw = c.sock
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        time.sleep(probes + 0.6)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        time.sleep(SETTLE)
        window = cap.window(start, port=c.local_port)
        if any(p.payload for p in window):
            continue  # a server keepalive fell in: again
        sent = sum(1 for p in window if p.up)
        if sent:
            return {**tally(window).scaled(1 / sent), "probes": sent}
    return {"error": "no clean window for TCP keepalive probes"}


# ------------------------------------------------------------------ announcements


def _exists_of(line: bytes) -> int:
    m = _EXISTS.match(line)
    return int(m.group(1)) if m else 0


def announce_idle(phone: Phone, sizes: list[int], reps: int = 1) -> dict[str, object]:
    """New mail heard in IDLE (``* n EXISTS``), then fetched: headers, whole."""
    rig = phone.rig
    c = phone.connect()
    phone.setup(c)
    out: dict[str, object] = {}
    seen: list[bytes] = []

    def arrive(size: int) -> Callable[[], None]:
        def step() -> None:
            phone.deliver(size)
            seen.append(c.wait_for(b"EXISTS", 20))

        return step

    runs: dict[str, list[dict[str, Any]]] = {"idle_exists": [], "fetch_headers": []}
    for _ in range(reps):
        runs["idle_exists"].append(counted(rig, c, arrive(1500)).as_dict())
        fetch = f"FETCH {_exists_of(seen[-1])} {HEADER_FETCH}"
        row = counted(rig, c, lambda fetch=fetch: (c.done(), c.command(fetch), c.idle()))
        runs["fetch_headers"].append(row.as_dict())
    out.update({name: median(rows) for name, rows in runs.items()})
    whole: dict[str, object] = {}
    for size in sizes:
        counted(rig, c, arrive(size))
        fetch = f"FETCH {_exists_of(seen[-1])} (UID BODY.PEEK[])"
        whole[str(size)] = counted(
            rig, c, lambda fetch=fetch: (c.done(), c.command(fetch), c.idle())
        ).as_dict()
    out["fetch_whole"] = whole
    c.done()
    phone.note(c.command("NOOP"))
    c.logout()
    return out


def announce_notify(phone: Phone, reps: int = 1) -> dict[str, object]:
    """NOTIFY (RFC 5465) with nothing selected: ``* STATUS INBOX (...)``, then the
    catch-up the watcher does: EXAMINE with QRESYNC, fetch headers, UNSELECT."""
    rig = phone.rig
    c = phone.connect()
    c.login(USER, PASSWORD)
    c.command("ENABLE QRESYNC")
    lines = c.command("EXAMINE INBOX")
    phone.note(lines)
    c.command("UNSELECT")
    c.command(
        "NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
        "(MAILBOXES INBOX (MessageNew MessageExpunge))"
    )
    c.idle()
    out: dict[str, object] = {}
    status: list[bytes] = []

    def step() -> None:
        phone.deliver(1500)
        status.append(c.wait_for(b"STATUS", 20))

    runs: dict[str, list[dict[str, Any]]] = {"notify_status": [], "notify_catch_up": []}

    def catch_up() -> None:
        c.done()
        got = c.command(f"EXAMINE INBOX (QRESYNC ({phone.uidvalidity} {phone.modseq}))")
        phone.note(got)
        m = re.search(rb"UIDNEXT (\d+)", status[-1])
        uid = int(m.group(1)) - 1 if m else 1
        c.command(f"UID FETCH {uid} {HEADER_FETCH}")
        c.command("UNSELECT")
        c.idle()

    for _ in range(reps):
        runs["notify_status"].append(counted(rig, c, step).as_dict())
        runs["notify_catch_up"].append(counted(rig, c, catch_up).as_dict())
    out.update({name: median(rows) for name, rows in runs.items()})
    c.done()
    c.logout()
    return out


def announce_notify_push(phone: Phone, reps: int = 1) -> dict[str, object]:
    """NOTIFY as ``pushmail watch`` uses it now: INBOX kept EXAMINEd with MessageNew
    FETCH items, so a new message comes as ``* n EXISTS`` and ``* n FETCH (UID
    RFC822.SIZE BODY[HEADER.FIELDS ...])``, and the client sends nothing back."""
    rig = phone.rig
    c = phone.connect()
    c.login(USER, PASSWORD)
    c.command("ENABLE QRESYNC")
    phone.note(c.command("EXAMINE INBOX"))
    c.command(
        f"NOTIFY SET (SELECTED (MessageNew {HEADER_FETCH} MessageExpunge)) "
        "(MAILBOXES (INBOX) (MessageNew MessageExpunge))"
    )
    c.idle()

    def step() -> None:
        phone.deliver(1500)
        c.wait_for(b"FETCH", 20)

    rows = [counted(rig, c, step).as_dict() for _ in range(reps)]
    c.done()
    c.logout()
    return {"notify_push": median(rows)}


# ------------------------------------------------------------------ reconnects and polls

RECONNECTS = {
    # name: (port, resumed, auth, compress)
    "full_login": (IMAPS, False, "login", False),
    "full_authenticate": (IMAPS, False, "authenticate", False),
    "full_login_compress": (IMAPS, False, "login", True),
    "front_full_login": (FRONT, False, "login", False),
    "resumed_login": (FRONT, True, "login", False),
    "resumed_login_compress": (FRONT, True, "login", True),
}


def reconnects(phone: Phone, names: list[str]) -> dict[str, object]:
    """From SYN to ``+ idling`` again: TCP, TLS, greeting, auth, [COMPRESS], ENABLE
    QRESYNC, SELECT INBOX (QRESYNC ...), IDLE. The dead connection it replaces costs
    nothing more here (the NAT dropped it)."""
    out: dict[str, object] = {}
    phone.refresh()
    for name in names:
        port, resumed, auth, compress = RECONNECTS[name]
        session = None
        if resumed:
            warm = phone.connect(FRONT)
            session = warm.session
            warm.logout()
        cap = _cap(phone.rig)
        start = cap.mark()
        c = phone.connect(port, session)
        phone.setup(c, auth, compress)
        time.sleep(SETTLE)
        row = tally(cap.window(start, port=c.local_port)).as_dict()
        out[name] = {**row, "tls_resumed": c.resumed}
        c.done()
        c.logout()
    return out


def poll_cycles(phone: Phone) -> dict[str, object]:
    """One poll: connect, log in, STATUS INBOX, LOGOUT and the closing FINs; and what a
    phone does after a true-push alert: connect, log in, ENABLE QRESYNC, SELECT with
    QRESYNC (which lists the new message), fetch its headers, LOGOUT."""
    out: dict[str, object] = {}
    runs = (("poll_full", IMAPS, False), ("poll_resumed", FRONT, True),
            ("push_fetch_full", IMAPS, False), ("push_fetch_resumed", FRONT, True))  # fmt: skip
    for name, port, resumed in runs:
        session = None
        if resumed:
            warm = phone.connect(FRONT)
            session = warm.session
            warm.logout()
        if name.startswith("push"):
            phone.deliver(1500)
            time.sleep(0.3)
        cap = _cap(phone.rig)
        start = cap.mark()
        c = phone.connect(port, session)
        c.login(USER, PASSWORD)
        if name.startswith("poll"):
            c.command("STATUS INBOX (UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")
        else:
            c.command("ENABLE QRESYNC")
            lines = c.command(f"SELECT INBOX (QRESYNC ({phone.uidvalidity} {phone.modseq}))")
            phone.note(lines)
            c.command(f"UID FETCH {phone.delivered}:* {HEADER_FETCH}")
        was_resumed = c.resumed
        c.logout()
        time.sleep(SETTLE + 0.2)
        out[name] = {**tally(cap.window(start, port=c.local_port)).as_dict(),
                     "tls_resumed": was_resumed}  # fmt: skip
    return out


# ------------------------------------------------------------------ true-push alerts


def alerts(phone: Phone) -> dict[str, object]:
    """pushmail's own alert requests to the three receivers, for one new message:
    ``cold`` (the first: TCP + TLS handshake to the service included) and ``warm``
    (the next, on the connection aiohttp kept)."""
    rig = phone.rig
    cap = _cap(rig)
    out: dict[str, object] = {}
    for round_ in ("cold", "warm"):
        for r in rig.receivers.values():
            r.got.clear()
        start = cap.mark()
        phone.deliver(1500)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(r.got for r in rig.receivers.values()):
            time.sleep(0.05)
        time.sleep(SETTLE + 0.2)
        row: dict[str, object] = {}
        for kind, port in RECEIVERS.items():
            r = rig.receivers[kind]
            if not r.got:
                row[kind] = {"error": "no request arrived"}
                continue
            got = r.got[0]
            t = tally(cap.window(start, port=port))
            row[kind] = {
                "bytes": t.bytes,
                "to_service": t.down_bytes,  # pushmail (in its namespace) -> receiver
                "from_service": t.up_bytes,
                "packets": t.packets,
                "http_body": len(got.body),
                "decrypted": got.plaintext is not None,
            }
        out[round_] = row
    return out
