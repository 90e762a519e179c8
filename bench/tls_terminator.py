"""A TLS 1.3 front that issues session tickets, forwarding to pushmail's plain IMAP.

pushmail itself sends no TLS 1.3 tickets (``transport/tls.py``: each worker would have its
own ticket key), so a resumed handshake cannot be measured against it directly. This
front, run in the server's namespace with pushmail's own certificate and Python's
OpenSSL defaults (two tickets after each full handshake), shows what a resumed
reconnect costs on the wire; the IMAP bytes inside are pushmail's own.

    python bench/tls_terminator.py LISTEN_HOST LISTEN_PORT CERT KEY BACKEND_PORT
"""

from __future__ import annotations

import asyncio
import ssl
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(host: str, port: int, cert: str, key: str, backend: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            br, bw = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            w.close()
            return
        await asyncio.gather(_pipe(r, bw), _pipe(br, w))

    server = await asyncio.start_server(handle, host, port, ssl=ctx)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    h, p, c, k, b = sys.argv[1:6]
    asyncio.run(main(h, int(p), c, k, int(b)))
