"""Where alerts may be sent: user-chosen URLs must not reach inside the network.

Webhook, ntfy and Web Push endpoints are chosen by users (Web Push by their
browser), and the server POSTs to them. Unchecked, that lets any user make the server
send requests to its own loopback services, the LAN, or a cloud metadata service
(169.254.169.254): server-side request forgery. So an endpoint is judged twice:

- when it is added (``check_endpoint``, the one rule the HTTP API and the CLI
  share): the URL's form, its scheme, and its host, resolved, so that a user hears
  at once why an endpoint is refused;
- when a request is sent (``guarded_session``): every socket the alert senders
  open goes through ``socket_factory``, which sees the address actually connected
  to, after DNS. A name that resolved to a public address when it was added and to
  127.0.0.1 now (DNS rebinding) is refused here; TLS still names the host (SNI and
  certificate check) and ``Host`` is still the name. Redirects are never followed
  (``senders.post``), so a public endpoint cannot bounce a request inwards either.

What is refused is one explicit table (IANA's special-purpose registries: what is
not globally reachable), not ``ipaddress.is_global``, whose lists changed between
Python releases. IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4)
are judged by that address; anything outside IPv6 global unicast (2000::/3) is
refused. Host spellings that the C resolver reads as IPv4 addresses
(``0x7f000001``, ``2130706433``, ``127.1``, ``0177.0.0.1``) are read the same way.

The operator may lift the address rules with ``push.allow_private_endpoints``
(tests, trusted networks); the URL form and scheme rules stay.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc

from pushmail import seclog
from pushmail.config import PushSettings

MAX_URL = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address
)
_V6_REFUSED: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved (IPv4-compatible)"),
    ("64:ff9b:1::/48", "private (local NAT64)"),
    ("100::/64", "reserved (discard)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("5f00::/16", "reserved (SRv6)"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_V4_NETS = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4_REFUSED)
_V6_NETS = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_REFUSED)
_V6_GLOBAL = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NUMERIC = frozenset("0123456789abcdefxABCDEFX.")


class RefusedEndpoint(ValueError):
    """An endpoint URL that may not be used; the message says why."""


REFUSED = "destination is not a public address"


class RefusedDestination(OSError):
    """Raised by the socket factory: an alert would connect to a refused address."""


def refusal(address: IpAddress) -> str | None:
    """Why ``address`` may not be connected to, or None if it is globally reachable."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            return refusal(embedded)
        for net, why in _V6_NETS:
            if address in net:
                return why
        return None if address in _V6_GLOBAL else "reserved"
    for net4, why in _V4_NETS:
        if address in net4:
            return why
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form stands for (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def host_literal(host: str) -> IpAddress | None:
    """``host`` as an IP address if it is one in any spelling a resolver accepts
    (standard, or the BSD ``inet_aton`` forms: hex, octal, one to four parts)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if host and set(host) <= _NUMERIC and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """The operator's settings that decide which endpoints are allowed."""

    allow_http: bool = False
    allow_private: bool = False


def endpoint_policy(settings: PushSettings) -> EndpointPolicy:
    return EndpointPolicy(settings.allow_http_endpoints, settings.allow_private_endpoints)


def check_url(url: object, policy: EndpointPolicy) -> str:
    """The URL's form and scheme (no DNS): the URL, or RefusedEndpoint."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise RefusedEndpoint(f"endpoint must be a URL of at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or not url.isascii():
        raise RefusedEndpoint("endpoint must be a URL without spaces or control characters")
    schemes = ("https", "http") if policy.allow_http else ("https",)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        raise RefusedEndpoint("endpoint is not a valid URL") from None
    if parts.scheme not in schemes or not url.startswith(parts.scheme + "://"):
        raise RefusedEndpoint(f"endpoint must be a {' or '.join(s + '://' for s in schemes)} URL")
    if not parts.hostname:
        raise RefusedEndpoint("endpoint must name a host")
    if "@" in parts.netloc:
        raise RefusedEndpoint("endpoint must not carry a user name or password")
    return url


def check_addresses(host: str, addresses: Iterable[IpAddress], policy: EndpointPolicy) -> None:
    """RefusedEndpoint if any address ``host`` stands for is refused."""
    if policy.allow_private:
        return
    for address in addresses:
        why = refusal(address)
        if why is not None:
            raise RefusedEndpoint(
                f"endpoint host {host} is {why} ({address}); alerts go only to public "
                "addresses (the operator may set push.allow_private_endpoints)"
            )


def addresses_of(infos: Iterable[Any]) -> list[IpAddress]:
    """The addresses in ``getaddrinfo`` results."""
    out: list[IpAddress] = []
    for info in infos:
        literal = host_literal(str(info[4][0]))
        if literal is not None:
            out.append(literal)
    return out


def split(url: str) -> tuple[str, int]:
    """The host and port an already checked URL connects to."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def check_endpoint(url: object, policy: EndpointPolicy) -> str:
    """The rule shared by the HTTP API and the CLI (blocking DNS: the CLI, or a
    thread): form and scheme, then every address the host resolves to. A name that
    does not resolve now is accepted; the send-time check still applies."""
    checked = check_url(url, policy)
    host, port = split(checked)
    literal = host_literal(host)
    if literal is not None:
        check_addresses(host, [literal], policy)
    elif not policy.allow_private:
        name = host.rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761 §6.3
            check_addresses(host, [ipaddress.IPv4Address("127.0.0.1")], policy)
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return checked
        check_addresses(host, addresses_of(infos), policy)
    return checked


def socket_factory(allow_private: bool) -> Any:
    """What aiohttp's connector creates sockets with: refuses a refused address
    (``RefusedDestination``) and logs it, before any packet is sent."""

    def make(addr_info: tuple[int, int, int, str, tuple[Any, ...]]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = host_literal(str(sockaddr[0]))
        why = "not an IP address" if address is None else refusal(address)
        if why is not None and not allow_private:
            seclog.report(
                "push-destination-refused", "push", "-", address=str(sockaddr[0]),
                port=int(sockaddr[1]), reason=why,
            )  # fmt: skip
            # One message for all: when every address of a name is refused, the
            # connector then raises this exception itself, not a combined OSError.
            raise RefusedDestination(REFUSED)
        return socket.socket(family, type_, proto)

    return make


def guarded_session(
    allow_private: bool, resolver: aiohttp.abc.AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The HTTP client for alerts: every connection checked by ``socket_factory``;
    no proxy from the environment (``trust_env`` stays off). ``resolver``: tests
    play DNS with it."""
    connector = aiohttp.TCPConnector(
        socket_factory=socket_factory(allow_private), resolver=resolver
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def is_refused_destination(exc: BaseException) -> bool:
    """True when an aiohttp connection error came from ``socket_factory``."""
    os_error = getattr(exc, "os_error", None)
    return isinstance(exc, RefusedDestination) or isinstance(os_error, RefusedDestination)
