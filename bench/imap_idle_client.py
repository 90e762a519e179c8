"""Many IMAP sessions parked in IDLE, spread over worker processes, timing each EXISTS.

Why worker processes: one process may hold at most ~20,000 fds here, and the client
must never be what limits a benchmark, so the coordinator (:class:`ClientPool`) splits
the sessions over several copies of this script run with ``--worker``. They talk JSON
lines over stdin/stdout:

* worker -> coordinator once loaded: ``{"started": pid}``.
* coordinator -> worker, first line: ``{"host", "port", "sessions": [[sid, user, pw]],
  "concurrency", "timeout", "source", "tls"}`` (``source``: the local address to connect
  from, or null; ``tls``: implicit TLS, as to an IMAPS port); the worker logs every
  session in, SELECTs INBOX, enters IDLE and answers ``{"ready": [[sid, exists]],
  "failed": {sid: reason}}``.
* ``collect`` -> ``{"events": [[sid, exists, t_ns]], "closed": [sid]}``, all so far.
* ``quit`` (or EOF, e.g. the coordinator died) -> the worker closes everything and exits.

Timestamps are ``time.monotonic_ns()`` taken in ``data_received`` before any parsing:
CLOCK_MONOTONIC is system-wide on Linux, so they compare directly with the
coordinator's LMTP reply times.

TLS on the client side is an ``ssl.SSLObject`` over two ``MemoryBIO``s inside the
protocol, not asyncio's SSL transport: that one allocates a 256 KB receive buffer per
connection (5 GB of client RAM at 20,000 sessions), where an idle SSLObject costs
~20 KB, so the client side stays far from being what limits a TLS run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import proctools

_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r?$")
_MAX_LINE = 65536
# Linux: bind() to an address without reserving a port; the port is chosen at connect()
# from the (source, destination) pair, so one source address is not limited to the
# ephemeral range once over *all* destinations (include/uapi/linux/in.h).
_IP_BIND_ADDRESS_NO_PORT = 24
# Where a session is in setting itself up (``IdleProtocol._setup_line``).
_GREETING, _LOGIN, _SELECT, _IDLE, _FAILED = range(5)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """One IMAP session to open: an id unique in the run, and whose mailbox it watches."""

    sid: int
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class ExistsEvent:
    """Session *sid* heard ``* exists EXISTS`` at monotonic time *t_ns*."""

    sid: int
    exists: int
    t_ns: int


def quote(text: str) -> str:
    """An IMAP quoted string (RFC 3501 ``quoted``); benchmark credentials are ASCII."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class IdleProtocol(asyncio.Protocol):
    """One connection: it sets itself up line by line, then times bare EXISTS.

    Setting up (greeting → LOGIN → SELECT INBOX → IDLE) is a small state machine in
    ``data_received`` that answers each reply itself and settles ``ready`` with the
    EXISTS count at SELECT once the server says ``+``: no task, queue or future per
    line, because the client shares the machine's two cores with the server and every
    millisecond it spends is one the server being measured does not get. Once in IDLE
    ``data_received`` stamps the time and scans the lines, so a wake-up costs the
    client almost nothing.
    """

    def __init__(
        self,
        sid: int,
        events: list[ExistsEvent],
        closed: set[int],
        tls: ssl.SSLContext | None = None,
        login: tuple[str, str] = ("", ""),
        ready: asyncio.Future[int] | None = None,
    ) -> None:
        self.sid = sid
        self.events = events
        self.closed = closed
        self.idling = False
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.tls: ClientTls | None = None if tls is None else ClientTls(tls)
        self.login = login
        self.ready = ready
        self.step = _GREETING
        self.exists = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.tls is not None:
            transport.write(self.tls.start())  # the ClientHello

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.tls is not None:
            try:
                data, reply = self.tls.receive(data)
            except ssl.SSLError:
                assert self.transport is not None
                self.transport.abort()  # connection_lost reports it
                return
            if reply:
                assert self.transport is not None
                self.transport.write(reply)
        self._received_plain(data, now)

    def _received_plain(self, data: bytes, now: int) -> None:
        self.buffer += data
        *complete, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > _MAX_LINE:
            self.buffer = b""
        for line in complete:
            if not self.idling:
                self._setup_line(line)
                continue
            match = _EXISTS.match(line)
            if match:
                self.events.append(ExistsEvent(self.sid, int(match.group(1)), now))

    def _setup_line(self, line: bytes) -> None:
        step = self.step
        if step == _GREETING and line.startswith(b"* "):
            user, password = self.login
            self.send(f"a LOGIN {quote(user)} {quote(password)}")
            self.step = _LOGIN
        elif step == _LOGIN and line.startswith(b"a "):
            self._then(line, PermissionError("LOGIN: "), "b SELECT INBOX", _SELECT)
        elif step == _SELECT:
            match = _EXISTS.match(line)
            if match:
                self.exists = int(match.group(1))
            elif line.startswith(b"b "):
                self._then(line, RuntimeError("SELECT: "), "c IDLE", _IDLE)
        elif step == _IDLE:
            if line.startswith(b"+"):
                self.idling = True
                if self.ready is not None and not self.ready.done():
                    self.ready.set_result(self.exists)
            elif line.startswith(b"c "):
                self._fail(RuntimeError(f"IDLE: {line[:120]!r}"))

    def _then(self, reply: bytes, error: Exception, command: str, step: int) -> None:
        """After a tagged reply: on OK send the next command, else fail with
        ``error`` (its text prefixed to the reply's start)."""
        if not reply.partition(b" ")[2].startswith(b"OK"):
            self._fail(type(error)(f"{error}{reply[:120]!r}"))
            return
        self.send(command)
        self.step = step

    def _fail(self, exc: Exception) -> None:
        self.step = _FAILED
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.add(self.sid)
        self._fail(ConnectionError("server closed the connection"))

    def send(self, line: str) -> None:
        assert self.transport is not None
        data = line.encode() + b"\r\n"
        self.transport.write(data if self.tls is None else self.tls.encrypt(data))


class ClientTls:
    """The client end of TLS for one connection, without asyncio's SSL transport."""

    __slots__ = ("incoming", "obj", "outgoing", "shaken")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=False)
        self.shaken = False

    def start(self) -> bytes:
        """Begin the handshake; return the ClientHello to send."""
        self._handshake()
        return self.outgoing.read()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Ciphertext in; return (plaintext for the protocol, ciphertext to send back).
        Raises ``ssl.SSLError`` when the peer's TLS is broken."""
        self.incoming.write(data)
        if not self.shaken:
            self._handshake()
        plain = bytearray()
        while self.shaken:
            try:
                chunk = self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            plain += chunk
        return bytes(plain), self.outgoing.read()

    def encrypt(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self.outgoing.read()

    def _handshake(self) -> None:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        self.shaken = True


def client_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: loopback benchmarking against
    self-signed certificates, where what is measured is the servers' memory and time."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_for_tls_greeting(port: int, deadline: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll until an implicit-TLS listener completes a handshake and greets ``* OK``."""
    context = client_context()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                context.wrap_socket(raw) as sock,
            ):
                if sock.recv(256).startswith(b"* OK"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server did not answer TLS on port {port}")


async def _connect_from(host: str, port: int, source: str) -> socket.socket:
    """A TCP socket connected to (host, port) from the local address *source*.

    Why: one (source, destination) address pair has only ~28,000 ephemeral ports, so
    100,000 loopback clients must come from several 127.0.0.x addresses.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # not Linux: bind() reserves the port, fine
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_idle(
    host: str,
    port: int,
    spec: SessionSpec,
    events: list[ExistsEvent],
    closed: set[int],
    source: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[IdleProtocol, int]:
    """(TLS if *tls*,) LOGIN, SELECT INBOX, IDLE; return the protocol and the EXISTS
    count at SELECT."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()

    def factory() -> IdleProtocol:
        return IdleProtocol(spec.sid, events, closed, tls, (spec.user, spec.password), ready)

    if source is None:
        transport, proto = await loop.create_connection(factory, host, port)
    else:
        sock = await _connect_from(host, port, source)
        transport, proto = await loop.create_connection(factory, sock=sock)
    try:
        exists = await ready
    except BaseException:
        transport.abort()
        raise
    return proto, exists


async def _open_all(config: dict[str, object]) -> None:
    """The worker's whole life: open every session, report, then serve commands."""
    host, port = str(config["host"]), int(str(config["port"]))
    source = None if config.get("source") is None else str(config["source"])
    timeout = float(str(config.get("timeout", 60)))
    tls = client_context() if config.get("tls") else None
    gate = asyncio.Semaphore(int(str(config.get("concurrency", 100))))
    events: list[ExistsEvent] = []
    closed: set[int] = set()
    protos: list[IdleProtocol] = []
    ready: list[list[int]] = []
    failed: dict[int, str] = {}

    async def one(raw: list[object]) -> None:
        spec = SessionSpec(int(str(raw[0])), str(raw[1]), str(raw[2]))
        async with gate:
            try:
                async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
                    proto, exists = await open_idle(host, port, spec, events, closed, source, tls)
            except (OSError, TimeoutError, PermissionError, RuntimeError) as exc:
                failed[spec.sid] = f"{type(exc).__name__}: {exc}"[:200]
                return
        protos.append(proto)
        ready.append([spec.sid, exists])

    sessions = config["sessions"]
    assert isinstance(sessions, list)
    await asyncio.gather(*(one(raw) for raw in sessions))
    _emit({"ready": ready, "failed": failed})
    await _serve_commands(events, closed)
    for proto in protos:
        if proto.transport is not None:
            proto.transport.abort()


async def _serve_commands(events: list[ExistsEvent], closed: set[int]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "collect":
            _emit({"events": [[e.sid, e.exists, e.t_ns] for e in events], "closed": sorted(closed)})
        elif command in ("quit", ""):
            return


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def worker_main() -> None:
    """Entry point of a worker process (``imap_idle_client.py --worker``)."""
    proctools.raise_nofile()
    _emit({"started": os.getpid()})
    line = sys.stdin.readline()
    if line.strip() not in ("", "quit"):
        asyncio.run(_open_all(json.loads(line)))


class ClientPool:
    """The coordinator's handle on all worker processes of one run.

    :meth:`spawn` and :meth:`open` are separate so the workers can be started (and have
    mapped the Python runtime they share with a Python server) *before* the server's
    baseline memory is read; otherwise their arrival would lower the server's PSS.
    """

    def __init__(
        self,
        procs: int,
        concurrency: int = 100,
        sources: list[str] | None = None,
        tls: bool = False,
    ) -> None:
        self.nprocs = max(1, procs)
        self.concurrency = concurrency
        self.tls = tls  # implicit TLS (the port given to open() is an IMAPS port)
        # Worker i connects from sources[i % len(sources)]; None: the kernel chooses.
        self.sources = sources
        self.workers: list[subprocess.Popen[str]] = []
        self.baseline: dict[int, int] = {}
        self.failed: dict[int, str] = {}

    def spawn(self) -> None:
        """Start the worker processes and wait until each is loaded and waiting."""
        script = str(Path(__file__).resolve())
        for _ in range(self.nprocs):
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, script, "--worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    preexec_fn=proctools.child_preexec,
                )
            )
        for worker in self.workers:
            self._receive(worker)  # {"started": pid}

    def open(self, host: str, port: int, sessions: list[SessionSpec], timeout: float) -> None:
        """Hand out the sessions; block until every one is idling or has failed."""
        if not self.workers:
            self.spawn()
        per_proc = max(1, self.concurrency // self.nprocs)
        for index, worker in enumerate(self.workers):
            share = sessions[index :: self.nprocs]
            config = {
                "host": host,
                "port": port,
                "concurrency": per_proc,
                "timeout": timeout,
                "sessions": [[s.sid, s.user, s.password] for s in share],
                "source": self.sources[index % len(self.sources)] if self.sources else None,
                "tls": self.tls,
            }
            self._send(worker, json.dumps(config))
        for worker in self.workers:
            reply = self._receive(worker)
            self.baseline.update({int(sid): int(n) for sid, n in reply["ready"]})
            self.failed.update({int(k): str(v) for k, v in reply["failed"].items()})

    @property
    def pids(self) -> list[int]:
        """The worker processes' pids (to account for the client side's CPU time)."""
        return [worker.pid for worker in self.workers]

    def collect(self) -> tuple[list[ExistsEvent], set[int]]:
        """All EXISTS seen so far by every session, and the sessions the server closed."""
        events: list[ExistsEvent] = []
        closed: set[int] = set()
        for worker in self.workers:
            self._send(worker, "collect")
            reply = self._receive(worker)
            events.extend(ExistsEvent(int(a), int(b), int(c)) for a, b, c in reply["events"])
            closed.update(int(sid) for sid in reply["closed"])
        return events, closed

    def close(self) -> None:
        """Ask every worker to quit; kill those that do not within a few seconds."""
        for worker in self.workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._send(worker, "quit")
        for worker in self.workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)
        self.workers = []

    @staticmethod
    def _send(worker: subprocess.Popen[str], line: str) -> None:
        assert worker.stdin is not None
        worker.stdin.write(line + "\n")
        worker.stdin.flush()

    @staticmethod
    def _receive(worker: subprocess.Popen[str]) -> dict[str, Any]:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"client worker {worker.pid} exited ({worker.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()
