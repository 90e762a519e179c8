"""The self-signed certificate and the server context, checked by a real handshake."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pushmail.transport.tls import ensure_certificate, server_context


def test_first_start_creates_a_p256_pair_with_private_key_mode(tmp_path: Path) -> None:
    cert_path, key_path = ensure_certificate(tmp_path / "new", "mail.example.org")
    assert (key_path.stat().st_mode & 0o777) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.org", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not list(tmp_path.glob("new/*.tmp"))


def test_existing_pair_is_kept(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, "localhost")
    before = first[0].read_bytes(), first[1].read_bytes()
    assert ensure_certificate(tmp_path, "other.example") == first
    assert (first[0].read_bytes(), first[1].read_bytes()) == before


def test_missing_half_is_regenerated(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path, "localhost")
    key.unlink()
    old = cert.read_bytes()
    ensure_certificate(tmp_path, "localhost")
    assert key.exists() and cert.read_bytes() != old


def handshake(ctx: ssl.SSLContext, client: ssl.SSLContext, host: str) -> str | None:
    """Handshake over a socket pair; the negotiated version, or raise."""
    a, b = socket.socketpair()
    result: list[object] = []

    def serve() -> None:
        try:
            with ctx.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as e:
            result.append(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client.wrap_socket(b, server_hostname=host) as c:
            version = c.version()
            c.sendall(b"x")
    finally:
        t.join(10)
        a.close()
        b.close()
    return version


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "mail.example.org"])
def test_clients_trusting_the_cert_can_verify_it(tmp_path: Path, host: str) -> None:
    cert, key = ensure_certificate(tmp_path, "mail.example.org")
    client = ssl.create_default_context(cafile=str(cert))
    assert handshake(server_context(cert, key), client, host) in ("TLSv1.2", "TLSv1.3")


def test_tls_1_2_clients_are_served(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path, "localhost")
    client = ssl.create_default_context(cafile=str(cert))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(server_context(cert, key), client, "localhost") == "TLSv1.2"


def test_context_settings(tmp_path: Path) -> None:
    ctx = server_context(*ensure_certificate(tmp_path, "localhost"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all("ECDHE" in n and ("GCM" in n or "CHACHA" in n) for n in tls12)
