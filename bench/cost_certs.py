"""A certificate chain shaped like a public CA's, for the full TLS handshakes.

pushmail's default is one self-signed P-256 certificate (~0.5 KB), far smaller than
what a phone receives from a real server: a leaf and an intermediate (Let's Encrypt's
ECDSA chain: a P-256 leaf with SAN, policies, AIA, CRL and two embedded SCTs, signed
by a P-384 intermediate). A full handshake carries the chain, a resumed one does not,
so the size matters to the comparison. The SCT list is opaque bytes of the size two
real SCTs take (we cannot make real ones, and nobody checks them here).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_DV_POLICY = ObjectIdentifier("2.23.140.1.2.1")


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US")] if org else []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_chain(out: Path, ip: str) -> tuple[Path, Path, dict[str, int]]:
    """Write ``chain.pem`` (leaf, intermediate) and ``leaf-key.pem``; return their
    paths and the DER sizes."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP384R1())
    inter_key = ec.generate_private_key(ec.SECP384R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Bench Root X2", "Bench Security Research Group")
    inter_name = _name("E9", "Bench Encrypt")
    inter = (
        x509.CertificateBuilder()
        .subject_name(inter_name)
        .issuer_name(root_name)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier("http://x2.i.lencr.org/"),
                    )
                ]
            ),
            False,
        )
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(_DV_POLICY, None)]), False)
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier("http://x2.c.lencr.org/")], None, None, None
                    )
                ]
            ),
            False,
        )
        .sign(root_key, hashes.SHA384())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.org")]))
        .issuer_name(inter_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), False
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier("http://e9.i.lencr.org/"),
                    )
                ]
            ),
            False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("mail.example.org"),
                    x509.DNSName("imap.example.org"),
                    x509.IPAddress(ipaddress.ip_address(ip)),
                ]
            ),
            False,
        )
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(_DV_POLICY, None)]), False)
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier("http://e9.c.lencr.org/42.crl")],
                        None,
                        None,
                        None,
                    )
                ]
            ),
            False,
        )
        .add_extension(
            x509.UnrecognizedExtension(_SCT_LIST, b"\x04\x81\xf2" + os.urandom(242)), False
        )
        .sign(inter_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    chain, key = out / "chain.pem", out / "leaf-key.pem"
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + inter.public_bytes(serialization.Encoding.PEM)
    )
    key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    sizes = {
        "leaf_der": len(leaf.public_bytes(serialization.Encoding.DER)),
        "intermediate_der": len(inter.public_bytes(serialization.Encoding.DER)),
    }
    return chain, key, sizes
