"""Throw-away certificates for TLS tests: a CA, a server certificate and a client one."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    self_signed_cert: str
    self_signed_key: str
    trust_bundle: str
    """The CA and the self-signed client certificate: what the server trusts for clients."""
    ca_key: str = ""


def issue_client(pki: Pki, common_name: str = "test-client") -> tuple[bytes, bytes]:
    """A new client certificate from ``pki``'s CA (a renewal): ``(cert PEM, key PEM)``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = x509.load_pem_x509_certificate(Path(pki.ca).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki.ca_key).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> str:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return str(path)


def make_pki(directory: Path, server_names: tuple[str, ...] = ("localhost",),
             server_ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A CA and leaf certificates, written as PEM files under ``directory``.

    The server certificate is valid for ``server_names`` and ``server_ips``.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(name: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                *(x509.DNSName(n) for n in server_names),
                *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips),
            ]), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("localhost", True)
    client_cert, client_key = leaf("test-client", False)
    self_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = (
        x509.CertificateBuilder().subject_name(_name("self-signed-client"))
        .issuer_name(_name("self-signed-client")).public_key(self_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(self_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "self-signed.pem").write_bytes(self_signed.public_bytes(pem))
    (directory / "trust.pem").write_bytes(ca.public_bytes(pem) + self_signed.public_bytes(pem))
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (directory / "client.pem").write_bytes(client_cert.public_bytes(pem))
    return Pki(
        ca=str(directory / "ca.pem"),
        server_cert=str(directory / "server.pem"),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=str(directory / "client.pem"),
        client_key=_write_key(directory / "client.key", client_key),
        self_signed_cert=str(directory / "self-signed.pem"),
        self_signed_key=_write_key(directory / "self-signed.key", self_key),
        trust_bundle=str(directory / "trust.pem"),
        ca_key=_write_key(directory / "ca.key", ca_key),
    )
