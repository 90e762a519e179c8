"""Memory per idle IMAP connection with and without COMPRESS=DEFLATE (RFC 4978).

Starts ``pushmail serve`` (one worker), opens N connections that LOGIN, optionally
COMPRESS DEFLATE, SELECT INBOX and IDLE, waits for the memory to settle, and prints
one JSON line: the server's USS/RSS growth per connection for each mode. Compressed
connections keep a zlib stream each (and do not hibernate), so this is the figure
that ``transport/compress.py``'s window and memLevel choices are about. Loopback only.

    .venv/bin/python bench/compress_memory.py --connections 1000
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import proctools

PASSWORD = "bench-password"


def _read_until(sock: socket.socket, token: bytes, inflate: zlib._Decompress | None) -> None:
    buf = b""
    deadline = time.monotonic() + 30
    while token not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {token!r}, have {buf[-200:]!r}")
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        buf += inflate.decompress(data) if inflate is not None else data


def open_idler(port: int, compress: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    _read_until(sock, b"\r\n", None)
    sock.sendall(f"a LOGIN bench@example.org {PASSWORD}\r\n".encode())
    _read_until(sock, b"a OK", None)
    deflate = inflate = None
    if compress:
        sock.sendall(b"z COMPRESS DEFLATE\r\n")
        _read_until(sock, b"z OK", None)
        deflate, inflate = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)

    def send(data: bytes) -> None:
        if deflate is not None:
            data = deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH)
        sock.sendall(data)

    send(b"s SELECT INBOX\r\n")
    _read_until(sock, b"s OK", inflate)
    send(b"i IDLE\r\n")
    _read_until(sock, b"+ ", inflate)
    return sock


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``pushmail serve`` with IMAP only (one worker; no HTTP, SMTP or LMTP)."""
    data = tmp / "data"
    cfg = tmp / "pushmail.toml"
    cfg.write_text('[push]\nhttp = "off"\n')
    base = [sys.executable, "-m", "pushmail"]
    subprocess.run(
        [*base, "user", "add", "bench@example.org", "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD.encode() + b"\n",
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = proctools.free_port()
    off = ("--imaps", "off", "--smtp", "off", "--submission", "off", "--lmtp", "off")
    proc = subprocess.Popen(
        [*base, "serve", "--config", str(cfg), "--data-dir", str(data), "--workers", "1",
         "--imap", f"127.0.0.1:{port}", *off],
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
        start_new_session=True,
    )  # fmt: skip
    proctools.wait_for_greeting(port, b"* OK", time.monotonic() + 60, proc)
    return proc, port


def measure(n: int, compress: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp))
        socks: list[socket.socket] = []
        try:
            time.sleep(1.0)
            base = proctools.tree_memory(proc.pid)
            for _ in range(n):
                socks.append(open_idler(port, compress))
            time.sleep(3.0)
            grown = proctools.tree_memory(proc.pid).minus(base)
        finally:
            for s in socks:
                s.close()
            proc.terminate()
            proc.wait(30)
    return {
        "connections": n,
        "uss_kb_per_conn": round(grown.uss_kb / n, 2),
        "rss_kb_per_conn": round(grown.rss_kb / n, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=1000)
    args = p.parse_args()
    proctools.raise_nofile()
    out = {
        "bench": "compress_memory",
        "plain": measure(args.connections, compress=False),
        "deflate": measure(args.connections, compress=True),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
