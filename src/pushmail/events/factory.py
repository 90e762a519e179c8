"""Which change bus a process uses, chosen by URL: the one place that builds one.

``bus = "unix:///var/lib/pushmail/events"`` is the default (the processes of one
machine, ``events/unixsock.py``); ``bus = "nats://host:4222"`` joins the nodes of a
cluster (``events/nats.py``). Everything else sees ``ServerBus`` (a serving
process) or ``OneShotPublisher`` (``pushmail deliver``).

URL forms (docs/configuration.md, "Store and bus"):

- ``unix:///ABSOLUTE/DIR`` or ``unix:RELATIVE/DIR`` (relative to the config
  file's directory): the directory of the processes' sockets;
- ``nats://HOST:PORT`` or ``tls://HOST:PORT`` (NATS over TLS), optionally
  ``?prefix=NAME``: the subjects are ``pushmail.NAME.…`` (default ``default``),
  so that several clusters (or test runs) can share one NATS server.
"""

from __future__ import annotations

from pushmail.backend_urls import BusKind, BusUrl, BusUrlError, parse_bus_url, unix_url
from pushmail.events.interfaces import OneShotPublisher, ServerBus

__all__ = [
    "BusKind",
    "BusUrl",
    "BusUrlError",
    "open_bus",
    "open_publisher",
    "parse_bus_url",
    "unix_url",
]


def open_bus(url: str) -> ServerBus:
    """A serving process's bus for ``url``; ``start(loop)`` it on the loop."""
    parsed = parse_bus_url(url)
    if parsed.path is not None:
        from pushmail.events.unixsock import UnixSocketBus

        return UnixSocketBus(parsed.path)
    from pushmail.events.nats import NatsBus

    return NatsBus(parsed.server, prefix=parsed.prefix)


def open_publisher(url: str) -> OneShotPublisher:
    """A publisher for a process with no event loop (``pushmail deliver``)."""
    parsed = parse_bus_url(url)
    if parsed.path is not None:
        from pushmail.events.unixsock import UnixSocketPublisher

        return UnixSocketPublisher(parsed.path)
    from pushmail.events.nats import NatsPublisher

    return NatsPublisher(parsed.server, prefix=parsed.prefix)
