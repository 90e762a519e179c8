"""Our TLS 1.3 record layer (transport/tls_records.py) against OpenSSL as the client.

Sessions are handshaken by OpenSSL in memory, handed off (transport/tls_layer.py), and
from then on every byte the OpenSSL client reads was sealed by us and every byte it
writes is opened by us, so OpenSSL itself checks our framing, nonces and keys.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.transport import tls_keylog, tls_records
from pushmail.transport.tls import ensure_certificate, server_context
from pushmail.transport.tls_layer import TlsState
from pushmail.transport.tls_records import (
    BAD_RECORD_MAC,
    DECODE_ERROR,
    ILLEGAL_PARAMETER,
    RECORD_OVERFLOW,
    UNEXPECTED_MESSAGE,
    RecordLayer,
    TlsAlert,
    hkdf_expand_label,
)


def context(tmp_path: Path, offload: bool = True) -> ssl.SSLContext:
    ctx = server_context(*ensure_certificate(tmp_path, "localhost"))
    if offload:
        tls_keylog.enable(ctx)
    return ctx


class Client:
    """An OpenSSL client over memory BIOs, talking to one server ``TlsState``."""

    def __init__(self, server: TlsState, tls12: bool = False) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.inp, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inp, self.out, server_hostname="localhost")
        self.server = server
        self.rest = b""  # ciphertext the server has not decrypted yet

    def handshake(self, pipelined: bytes = b"") -> None:
        for _ in range(10):
            with contextlib.suppress(ssl.SSLWantReadError):
                self.obj.do_handshake()
                if pipelined:  # data right behind the client's Finished
                    self.obj.write(pipelined)
                    pipelined = b""
            done, out, rest = self.server.handshake(self.out.read())
            self.inp.write(out)
            if done:
                self.rest = rest
                return
        raise AssertionError("handshake did not finish")

    def send(self, data: bytes) -> bytes:
        """The client writes ``data``; what the server decrypts of it."""
        self.obj.write(data)
        plain, reply, eof = self.server.decrypt(self.rest + self.out.read())
        self.rest = b""
        self.inp.write(reply)
        assert not eof
        return plain

    def receive(self, data: bytes) -> bytes:
        """The server sends ``data``; what the client reads of it."""
        self.inp.write(self.server.encrypt(data))
        got = b""
        with contextlib.suppress(ssl.SSLWantReadError):
            while True:
                got += self.obj.read(1 << 20)
        return got


def test_tls13_sessions_leave_openssl_and_data_flows_both_ways(tmp_path: Path) -> None:
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    assert client.obj.version() == "TLSv1.3"
    assert server.records is not None and server.obj is None
    assert server.incoming is None and server.outgoing is None
    assert client.send(b"a1 CAPABILITY\r\n") == b"a1 CAPABILITY\r\n"
    big = os.urandom(200_000)  # many full records each way
    assert client.receive(big) == big
    assert client.send(big) == big
    assert client.receive(b"* OK still here\r\n") == b"* OK still here\r\n"


def test_data_pipelined_behind_finished_is_not_lost(tmp_path: Path) -> None:
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake(pipelined=b"a1 LOGIN alice secret\r\n")
    assert server.records is not None
    assert client.rest  # it arrived with the Finished, after OpenSSL had stopped reading
    assert client.send(b"a2 NOOP\r\n") == b"a1 LOGIN alice secret\r\na2 NOOP\r\n"


def test_tls12_and_contexts_without_key_log_stay_on_openssl(tmp_path: Path) -> None:
    cases = ((TlsState(context(tmp_path)), True), (TlsState(context(tmp_path, False)), False))
    for server, tls12 in cases:
        client = Client(server, tls12=tls12)
        client.handshake()
        assert server.records is None and server.obj is not None
        assert client.send(b"a1 NOOP\r\n") == b"a1 NOOP\r\n"
        assert client.receive(b"a1 OK\r\n") == b"a1 OK\r\n"


def test_close_notify_both_ways(tmp_path: Path) -> None:
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    client.inp.write(server.close_notify())
    assert client.obj.read(10) == b""  # how CPython reports a close_notify
    with contextlib.suppress(ssl.SSLWantReadError):
        client.obj.unwrap()
    assert server.decrypt(client.out.read()) == (b"", b"", True)


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=12))
def test_ciphertext_split_anywhere_gives_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    server = TlsState(context(tmp_path_factory.getbasetemp()))
    client = Client(server)
    client.handshake()
    data = os.urandom(40_000)
    client.obj.write(data)
    wire = client.out.read()
    got = b""
    last = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        plain, _, _ = server.decrypt(wire[last:cut])
        got += plain
        last = cut
    assert got == data and not server.pending_input()


def client_view(server: TlsState) -> RecordLayer:
    """A record layer with the client's keys: it writes what the client would."""
    rec = server.records
    assert rec is not None
    return RecordLayer(rec.suite, rec._write.secret, rec._read.secret)


def test_key_update_from_the_peer_is_followed_and_answered(tmp_path: Path) -> None:
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    peer = client_view(server)
    update = peer._protect(22, bytes([24, 0, 0, 1, 1]))  # KeyUpdate, update_requested
    peer._write = peer._write.next()
    plain, reply, eof = server.decrypt(update + peer.seal(b"after the update\r\n"))
    assert plain == b"after the update\r\n" and reply and not eof
    # The server's answer is its own KeyUpdate; the peer moves to the server's next key.
    assert peer.open(reply) == (b"", b"", False)
    assert peer.open(server.encrypt(b"* OK new keys\r\n"))[0] == b"* OK new keys\r\n"


def test_we_update_our_keys_before_the_aead_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_records, "REKEY_AFTER", 3)
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    big = os.urandom(5 * 16384)  # five records: a KeyUpdate after the third
    assert client.receive(big) == big  # OpenSSL followed our KeyUpdate
    assert client.receive(b"more\r\n") == b"more\r\n"


def tampered(wire: bytes, at: int) -> bytes:
    return wire[:at] + bytes([wire[at] ^ 1]) + wire[at + 1 :]


@pytest.mark.parametrize("where", [5, 20, -1])
def test_tampered_records_are_refused(tmp_path: Path, where: int) -> None:
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    client.obj.write(b"a1 LOGIN alice secret\r\n")
    wire = client.out.read()
    with pytest.raises(TlsAlert) as err:
        server.decrypt(tampered(wire, where % len(wire)))
    assert err.value.description == BAD_RECORD_MAC


VIOLATIONS = {
    "late change_cipher_spec": (lambda p: b"\x14\x03\x03\x00\x01\x01", UNEXPECTED_MESSAGE),
    "oversized record": (lambda p: b"\x17\x03\x03\x41\x01" + bytes(8), RECORD_OVERFLOW),
    "a second ClientHello": (lambda p: p._protect(22, bytes([1, 0, 0, 0])), UNEXPECTED_MESSAGE),
    "unknown content type": (lambda p: p._protect(99, b"x"), UNEXPECTED_MESSAGE),
    "data behind a KeyUpdate": (
        lambda p: p._protect(22, bytes([24, 0, 0, 1, 0]) + b"x"),
        UNEXPECTED_MESSAGE,
    ),
    "bad KeyUpdate value": (lambda p: p._protect(22, bytes([24, 0, 0, 1, 7])), ILLEGAL_PARAMETER),
    "short record": (lambda p: b"\x17\x03\x03\x00\x03abc", DECODE_ERROR),
    "peer's fatal alert": (lambda p: p._protect(21, bytes([2, 40])), None),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_protocol_violations_get_the_right_alert(tmp_path: Path, case: str) -> None:
    make, alert = VIOLATIONS[case]
    server = TlsState(context(tmp_path))
    Client(server).handshake()
    with pytest.raises(TlsAlert) as err:
        server.decrypt(make(client_view(server)))
    assert err.value.description == alert


def test_hkdf_expand_label_matches_rfc_8448() -> None:
    # RFC 8448 §3 (simple 1-RTT handshake): the server's application traffic key and
    # IV derived from server_application_traffic_secret_0.
    secret = bytes.fromhex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
    assert hkdf_expand_label(secret, b"key", 16, "sha256") == bytes.fromhex(
        "9f02283b6c9c07efc26bb9f2ac92e356"
    )
    assert hkdf_expand_label(secret, b"iv", 12, "sha256") == bytes.fromhex(
        "cf782b88dd83549aadf1e984"
    )


def test_a_forked_worker_gets_a_key_log_of_its_own(tmp_path: Path) -> None:
    """Workers fork; each must read only its own handshakes' secrets."""
    ctx = context(tmp_path)
    pid = os.fork()
    if pid == 0:  # the child: a handshake here must still hand off
        code = 1
        try:
            server = TlsState(ctx)
            client = Client(server)
            client.handshake()
            if server.records is not None and client.send(b"x\r\n") == b"x\r\n":
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    server = TlsState(ctx)  # and the parent's log still works
    Client(server).handshake()
    assert server.records is not None


def test_no_secret_stays_in_the_key_log(tmp_path: Path) -> None:
    """After every handshake step, finished, pending or failed, the file is empty."""
    ctx = context(tmp_path)
    log = tls_keylog.keylog_of(ctx)
    assert log is not None

    def size() -> int:
        return os.fstat(log._fd).st_size

    server = TlsState(ctx)
    client = Client(server)
    with contextlib.suppress(ssl.SSLWantReadError):
        client.obj.do_handshake()
    done, _, _ = server.handshake(client.out.read())  # ClientHello → server flight
    assert not done and size() == 0
    with pytest.raises(ssl.SSLError):
        server.handshake(b"\x17\x03\x03\x00\x20" + bytes(32))  # not a Finished
    assert size() == 0
    ok = TlsState(ctx)
    Client(ok).handshake()
    assert ok.records is not None and size() == 0


def test_requested_key_update_at_our_own_rekey_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our answer to a KeyUpdate and our own rekey must never both switch the key:
    the peer would be one key behind."""
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    peer = client_view(server)
    update = peer._protect(22, bytes([24, 0, 0, 1, 1]))  # asks for ours
    peer._write = peer._write.next()
    monkeypatch.setattr(tls_records, "REKEY_AFTER", 1)  # from now on, for the server
    _, reply, _ = server.decrypt(update)
    assert peer.open(reply) == (b"", b"", False)
    for text in (b"one\r\n", b"two\r\n", b"three\r\n"):  # each record followed by a rekey
        assert peer.open(server.encrypt(text))[0] == text


def test_key_update_split_over_two_records(tmp_path: Path) -> None:
    server = TlsState(context(tmp_path))
    Client(server).handshake()
    peer = client_view(server)
    wire = peer._protect(22, bytes([24, 0])) + peer._protect(22, bytes([0, 1, 1]))
    peer._write = peer._write.next()
    plain, reply, _ = server.decrypt(wire + peer.seal(b"after\r\n"))
    assert plain == b"after\r\n"
    assert peer.open(reply) == (b"", b"", False)
    assert peer.open(server.encrypt(b"ok\r\n"))[0] == b"ok\r\n"


def test_an_exported_session_goes_on_in_a_restored_record_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a session moved to another worker relies on (net/homes.py): the
    restored layer goes on in both directions, with our keys already updated once
    before the move, and OpenSSL as the peer."""
    monkeypatch.setattr(tls_records, "REKEY_AFTER", 3)
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    assert client.send(b"a1 IDLE\r\n") == b"a1 IDLE\r\n"
    big = os.urandom(5 * 16384)  # our own KeyUpdate after the third record
    assert client.receive(big) == big
    assert server.records is not None
    exported = server.records.export()
    assert exported is not None and exported[2] == 1 and exported[4] == 2
    client.server = TlsState.from_records(RecordLayer.restore(exported))
    assert client.receive(b"* 1 EXISTS\r\n") == b"* 1 EXISTS\r\n"
    assert client.send(b"DONE\r\n") == b"DONE\r\n"
    assert client.receive(big) == big
    assert client.send(big) == big


def test_a_state_between_records_does_not_export(tmp_path: Path) -> None:
    server = TlsState(context(tmp_path))
    client = Client(server)
    client.handshake()
    client.obj.write(b"a1 NOOP\r\n")
    wire = client.out.read()
    assert server.records is not None
    assert server.decrypt(wire[:7]) == (b"", b"", False)  # half a record held
    assert server.records.export() is None
    assert server.decrypt(wire[7:])[0] == b"a1 NOOP\r\n"
    assert server.records.export() is not None
    with pytest.raises(ValueError):
        RecordLayer.restore(("TLS_NOT_A_SUITE", b"x" * 32, 0, b"y" * 32, 0))
