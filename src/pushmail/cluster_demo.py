"""``make cluster`` (``python -m pushmail.cluster_demo``): two ``pushmail serve``
nodes on one machine sharing one PostgreSQL database and one NATS server, to see
several nodes act as one (docs/cluster.md, "Two nodes on one machine").

It creates the database if it is missing (and keeps it, with the mail, for the next
run), makes the user demo@localhost the first time, starts the nodes on distinct
IMAP and LMTP ports, prints how to connect, and stops both on Ctrl-C. It installs
nothing: PostgreSQL and NATS must already run; when either cannot be reached it
says how to get it and exits 69 (EX_UNAVAILABLE).
"""

from __future__ import annotations

import argparse
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from pushmail.auth.passwords import hash_password
from pushmail.backend_urls import BusUrlError, StoreUrlError, parse_bus_url, parse_store_url
from pushmail.cli import DEMO_ADDRESS

EX_OK, EX_FAILURE, EX_USAGE, EX_UNAVAILABLE = 0, 1, 64, 69
NAMES = "ABCD"
STARTUP_SECONDS = 60.0

HOW_TO_GET_POSTGRESQL = """\
  Debian/Ubuntu: sudo apt install postgresql, then let your user in, e.g.
    sudo -u postgres createuser --superuser "$USER"   # and use postgresql:///pushmail_cluster
  or give the URL of a server you have with --store postgresql://USER@HOST:PORT/DBNAME"""
HOW_TO_GET_NATS = """\
  Debian/Ubuntu: sudo apt install nats-server, then run it: nats-server -a 127.0.0.1 -p 4222
  (JetStream is not needed) or give the URL of a server you have with --bus nats://HOST:PORT"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pushmail.cluster_demo", description=__doc__)
    p.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/pushmail_cluster",
                   help="the shared database (created if missing)")  # fmt: skip
    p.add_argument("--bus", default="nats://127.0.0.1:4222", help="the NATS server")
    p.add_argument("--dir", type=Path, default=Path("pushmail-cluster"),
                   help="the nodes' data directories (keys, sockets, logs) go here")  # fmt: skip
    p.add_argument("--imap-ports", default="11143,11144", help="one IMAP port per node")
    p.add_argument("--lmtp-ports", default="12424,12425", help="one LMTP port per node")
    args = p.parse_args(argv)
    try:
        args.imap = [int(x) for x in args.imap_ports.split(",")]
        args.lmtp = [int(x) for x in args.lmtp_ports.split(",")]
    except ValueError:
        p.error("ports are numbers separated by commas")
    if not 1 <= len(args.imap) <= len(NAMES) or len(args.imap) != len(args.lmtp):
        p.error(f"as many IMAP as LMTP ports, 1 to {len(NAMES)} of each")
    return args


class Unavailable(Exception):
    """PostgreSQL or NATS cannot be reached: the message says how to get it."""


def ensure_database(store: str) -> None:
    """Create the store's database unless it exists, connected to the server's
    ``postgres`` database (one cannot create the database one connects to)."""
    try:
        import psycopg
    except ImportError:
        raise Unavailable("psycopg is not installed: pip install -e '.[postgres]'") from None
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn = parse_store_url(store).dsn
    name = str(conninfo_to_dict(dsn).get("dbname") or "")
    if not name:
        raise StoreUrlError(f"name the database in the store URL: {store!r}")
    admin = make_conninfo(dsn, dbname="postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created the database {name}")
    except psycopg.Error as e:
        raise Unavailable(f"PostgreSQL at {admin} cannot be used: {str(e).strip()}\n"
                          + HOW_TO_GET_POSTGRESQL) from None  # fmt: skip


def check_nats(bus: str) -> None:
    """NATS greets every client with an INFO line: is one there?"""
    server = urlsplit(parse_bus_url(bus).server)
    where = (server.hostname or "127.0.0.1", server.port or 4222)
    try:
        with socket.create_connection(where, timeout=3) as sock:
            sock.settimeout(3)
            if sock.recv(4096).startswith(b"INFO "):
                return
            problem = "it does not answer like a NATS server"
    except OSError as e:
        problem = str(e)
    raise Unavailable(f"no NATS server at {where[0]}:{where[1]}: {problem}\n" + HOW_TO_GET_NATS)


def ensure_demo_user(store_url: str) -> str:
    """The line to print about demo@localhost, creating the user the first time."""
    from pushmail.store.factory import open_store

    store = open_store(store_url)
    try:
        if store.get_user(DEMO_ADDRESS) is not None:
            return (f"user: {DEMO_ADDRESS} (made by an earlier run; new password:"
                    f" pushmail user passwd {DEMO_ADDRESS} --store {store_url})")  # fmt: skip
        password = secrets.token_urlsafe(12)
        store.create_user(DEMO_ADDRESS, hash_password(password))
        return f"user: {DEMO_ADDRESS}  password: {password}  (shown only now)"
    finally:
        store.close()


class DemoNode:
    def __init__(self, name: str, root: Path, imap: int, lmtp: int) -> None:
        self.name, self.imap, self.lmtp = name, imap, lmtp
        self.data_dir = root / f"node-{name.lower()}"
        self.log = self.data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, store: str, bus: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "pushmail", "serve", "--data-dir", str(self.data_dir),
                "--store", store, "--bus", bus, "--imap", f"127.0.0.1:{self.imap}",
                "--lmtp", f"127.0.0.1:{self.lmtp}"]  # fmt: skip
        # Off: the other listeners' default ports would collide between the nodes.
        for off in ("imaps", "smtp", "submission", "socketmap", "metrics", "http"):
            args += [f"--{off}", "off"]
        with self.log.open("ab") as log:
            # A session of its own: a Ctrl-C reaches the demo only, which then stops
            # each node once, in order.
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def ready(self) -> bool:
        for port in (self.imap, self.lmtp):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """After ``terminate``: wait for the graceful shutdown, or kill."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        print(f"node {self.name} stopped ({self.proc.returncode})", flush=True)

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        store = parse_store_url(args.store)
        parse_bus_url(args.bus)
        if store.kind != "postgresql":
            raise StoreUrlError("the nodes must share a postgresql:// store")
        check_nats(args.bus)
        ensure_database(args.store)
        user_line = ensure_demo_user(args.store)
    except (StoreUrlError, BusUrlError) as e:
        print(f"pushmail cluster: {e}", file=sys.stderr)
        return EX_USAGE
    except Unavailable as e:
        print(f"pushmail cluster: {e}", file=sys.stderr)
        return EX_UNAVAILABLE

    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    root = args.dir.absolute()
    nodes = [DemoNode(NAMES[i], root, imap, lmtp)
             for i, (imap, lmtp) in enumerate(zip(args.imap, args.lmtp, strict=True))]  # fmt: skip
    try:
        for node in nodes:
            node.start(args.store, args.bus)
        return _run(nodes, args, user_line, stopping)
    finally:
        for node in nodes:  # all at once: each takes a moment to close its sessions
            node.terminate()
        for node in nodes:
            node.stop()


def _run(nodes: list[DemoNode], args: argparse.Namespace, user_line: str,
         stopping: list[int]) -> int:  # fmt: skip
    deadline = time.monotonic() + STARTUP_SECONDS
    waiting = list(nodes)
    while waiting and not stopping:
        if dead := [n for n in waiting if not n.alive()]:
            print(f"node {dead[0].name} did not start:\n{dead[0].tail()}", file=sys.stderr)
            return EX_FAILURE
        if time.monotonic() > deadline:
            print(f"the nodes did not listen within {STARTUP_SECONDS:.0f} s", file=sys.stderr)
            return EX_FAILURE
        waiting = [n for n in waiting if not n.ready()]
        time.sleep(0.1)
    if stopping:
        return EX_OK
    print(f"{len(nodes)} pushmail nodes on one store and one bus:")
    print(f"  store: {args.store}\n  bus:   {args.bus}")
    for n in nodes:
        print(f"  node {n.name}: IMAP 127.0.0.1:{n.imap}  LMTP 127.0.0.1:{n.lmtp}  log {n.log}")
    a, b = nodes[0], nodes[-1]
    print(user_line)
    print(f"Try it: IDLE on node {b.name} (an IMAP client on port {b.imap}), then deliver"
          f" through node {a.name}:\n"
          f"  swaks --protocol LMTP --server 127.0.0.1:{a.lmtp} --to {DEMO_ADDRESS}\n"
          "The mail appears at once on both nodes. Ctrl-C stops them.", flush=True)  # fmt: skip
    while not stopping:
        if dead := [n for n in nodes if not n.alive()]:
            print(f"node {dead[0].name} exited:\n{dead[0].tail()}", file=sys.stderr)
            return EX_FAILURE
        time.sleep(0.2)
    print("stopping the nodes", flush=True)
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
