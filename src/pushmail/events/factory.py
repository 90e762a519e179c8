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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pushmail.events.interfaces import OneShotPublisher, ServerBus

BusKind = Literal["unix", "nats"]
DEFAULT_NATS_PREFIX = "default"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class BusUrlError(ValueError):
    """A bus URL this program cannot use; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class BusUrl:
    kind: BusKind
    url: str  # normalised: a socket directory is absolute
    path: Path | None = None  # unix: the sockets' directory
    server: str = ""  # nats: the server's URL, without the query
    prefix: str = DEFAULT_NATS_PREFIX

    def __str__(self) -> str:
        return self.url


def unix_url(path: Path) -> str:
    """The URL of the Unix-socket bus whose sockets are in ``path``."""
    return f"unix://{path.absolute()}"


def parse_bus_url(url: str, base: Path | None = None) -> BusUrl:
    """Check ``url`` and normalise it (a relative directory against ``base``, by
    default the working directory); BusUrlError otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise BusUrlError(f"expected a bus URL, got {url!r}")
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise BusUrlError(f"expected a URL (unix:///DIR or nats://HOST:PORT), got {url!r}")
    if scheme == "unix":
        return _unix(url, rest, base)
    if scheme in ("nats", "tls"):
        return _nats(url)
    raise BusUrlError(f"unknown bus {scheme!r} in {url!r} (use unix: or nats:)")


def _unix(url: str, rest: str, base: Path | None) -> BusUrl:
    if rest.startswith("//"):
        netloc, _, tail = rest[2:].partition("/")
        if netloc not in ("", "localhost"):
            raise BusUrlError(f"the Unix-socket bus is local: no host in {url!r}")
        raw = "/" + tail
    else:
        raw = rest
    if "?" in raw or "#" in raw:
        raise BusUrlError(f"no query or fragment in a unix: bus URL: {url!r}")
    if raw in ("", "/"):
        raise BusUrlError(f"no directory in {url!r} (unix:///PATH/events)")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return BusUrl("unix", unix_url(path), path)


def _nats(url: str) -> BusUrl:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise BusUrlError(f"bad NATS URL {url!r}: {e}") from None
    if not parts.hostname or port is None:
        raise BusUrlError(f"expected nats://HOST:PORT, got {url!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise BusUrlError(f"no path or fragment in a NATS URL: {url!r}")
    prefix = DEFAULT_NATS_PREFIX
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key != "prefix":
            raise BusUrlError(f"unknown parameter {key!r} in {url!r} (only prefix=)")
        if not _PREFIX_RE.fullmatch(value):
            raise BusUrlError(f"bad prefix {value!r} in {url!r}: letters, digits, _ - and .")
        prefix = value
    server = parts._replace(path="", query="", fragment="").geturl()
    return BusUrl("nats", url, server=server, prefix=prefix)


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
