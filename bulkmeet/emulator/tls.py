"""The emulator's TLS: a private CA and a loopback server certificate it signs.

msal refuses ``http://`` authorities, so the emulator must speak HTTPS. Clients trust it by
pointing at the CA certificate (``ca.pem``), never by switching verification off. The CA can be
kept (``ca_dir`` or the state file) so that a restarted emulator is still trusted by clients that
loaded the CA once; the server certificate is re-issued at every start.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bulkmeet.atomic import atomic_write_bytes

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"


@dataclass(frozen=True)
class CertificateAuthority:
    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca() -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bulkmeet emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, "bulkmeet emulator local CA"),
    ])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); the server's EC key signs and agrees keys (ECDHE)."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def load_or_create_ca(ca_dir: Path | None) -> CertificateAuthority:
    """Load ``ca.pem``/``ca-key.pem`` from ``ca_dir``, creating them (key 0600) when absent."""
    if ca_dir is None:
        return create_ca()
    cert_path, key_path = ca_dir / CA_CERT_NAME, ca_dir / CA_KEY_NAME
    if cert_path.exists() and key_path.exists():
        try:
            ca = CertificateAuthority(cert_path.read_bytes(), key_path.read_bytes())
            ca.cert, ca.key  # noqa: B018 - parse now so a damaged file fails at start
            return ca
        except (ValueError, AssertionError, OSError):
            raise ValueError(
                f"{ca_dir}: {CA_CERT_NAME}/{CA_KEY_NAME} are not a usable CA certificate and "
                "key; delete them and the emulator makes a new CA."
            ) from None
    ca_dir.mkdir(parents=True, exist_ok=True)
    ca = create_ca()
    atomic_write_bytes(key_path, ca.key_pem, mode=0o600)
    atomic_write_bytes(cert_path, ca.cert_pem, mode=0o644)
    return ca


def issue_server_certificate(ca: CertificateAuthority, host: str) -> tuple[bytes, bytes]:
    """A short-lived certificate for the loopback names clients may use; returns (cert, key) PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = ca.cert, ca.key
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        ip = ipaddress.ip_address(host)
        if str(ip) not in ("127.0.0.1", "::1"):
            names.append(x509.IPAddress(ip))
    except ValueError:
        pass
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server-side context; the key only touches disk in a private temp dir for load_cert_chain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="bulkmeet-tls-") as tmp:
        cert_file = os.path.join(tmp, "server.pem")
        key_file = os.path.join(tmp, "server-key.pem")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        with open(cert_file, "wb") as fh:
            fh.write(cert_pem)
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
