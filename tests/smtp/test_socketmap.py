"""The Postfix socketmap service (smtp/socketmap.py) through a real socket."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from smtp_harness import ANY, Smtpd

from pushmail.store.interfaces import Store


def _recv_netstring(sock: socket.socket) -> bytes:
    data = b""
    while b":" not in data:
        chunk = sock.recv(1)
        assert chunk, "connection closed"
        data += chunk
    length = int(data[:-1])
    payload = b""
    while len(payload) < length + 1:
        chunk = sock.recv(length + 1 - len(payload))
        assert chunk, "connection closed"
        payload += chunk
    assert payload.endswith(b",")
    return payload[:-1]


def _ask(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(str(len(request)).encode() + b":" + request + b",")
    return _recv_netstring(sock)


@pytest.fixture
def mapd(smtpd_factory: Callable[..., Smtpd]) -> Smtpd:
    return smtpd_factory(socketmap=ANY)


def test_known_and_unknown_recipients_on_one_connection(mapd: Smtpd) -> None:
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        assert _ask(s, b"mailbox alice@example.org") == b"OK alice@example.org"
        assert _ask(s, b"mailbox Alice+news@EXAMPLE.org") == b"OK alice@example.org"
        assert _ask(s, b"mailbox nobody@example.org") == b"NOTFOUND "
        assert _ask(s, b"mailbox @example.org") == b"NOTFOUND "  # no catch-all
        assert _ask(s, b"mailbox alice") == b"NOTFOUND "
        assert _ask(s, b"domain example.org") == b"OK example.org"
        assert _ask(s, b"domain other.test") == b"OK other.test"  # a user lives there
        assert _ask(s, b"domain elsewhere.test") == b"NOTFOUND "
        assert _ask(s, b"aliases alice@example.org").startswith(b"PERM ")


def test_user_added_later_is_found_at_once(mapd: Smtpd) -> None:
    """Live look-ups: no map file to rebuild when users change."""
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        assert _ask(s, b"mailbox dave@example.org") == b"NOTFOUND "
        mapd.store(lambda st: st.create_user("dave@example.org", "{PLAIN}x"))
        assert _ask(s, b"mailbox dave@example.org") == b"OK dave@example.org"


@pytest.mark.parametrize(
    "garbage",
    [b"99999999:x,", b"abc:", b"5:hello;", b"2000:" + b"x" * 2000 + b","],
)
def test_malformed_or_oversized_request_closes_the_connection(mapd: Smtpd, garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        s.sendall(garbage)
        s.settimeout(5)
        try:
            rest = s.recv(100)
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    # the service still answers others
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        assert _ask(s, b"mailbox bob@example.org") == b"OK bob@example.org"


def test_store_failure_is_temp(mapd: Smtpd) -> None:
    """Postfix turns TEMP into 451 at RCPT: the sender retries instead of bouncing."""

    def break_store(store: Store) -> None:
        store.close()

    mapd.store(break_store)
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        assert _ask(s, b"mailbox nobody-cached@example.org").startswith(b"TEMP ")


def test_off_by_default(smtpd: Smtpd) -> None:
    assert [x.name for x in smtpd.listeners if x.name == "socketmap"] == []


def test_postmaster_of_local_domains_with_the_setting(smtpd_factory: Callable[..., Smtpd]) -> None:
    mapd = smtpd_factory(socketmap=ANY, postmaster="carol@other.test")
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        assert _ask(s, b"mailbox postmaster@example.org") == b"OK carol@other.test"
        assert _ask(s, b"mailbox PostMaster@mx.test") == b"OK carol@other.test"
        assert _ask(s, b"mailbox postmaster@elsewhere.test") == b"NOTFOUND "


def test_postmaster_without_the_setting_is_not_found(mapd: Smtpd) -> None:
    with socket.create_connection(("127.0.0.1", mapd.port("socketmap")), timeout=5) as s:
        assert _ask(s, b"mailbox postmaster@example.org") == b"NOTFOUND "
