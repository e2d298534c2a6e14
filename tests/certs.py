"""Throw-away certificates for TLS tests: a CA, a server certificate and a client one."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID


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
    ca = x509.load_pem_x509_certificate(Path(pki.ca).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki.ca_key).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert, key = _leaf(ca, ca_key, common_name)
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def _leaf(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str,
          server_names: tuple[str, ...] | None = None, server_ips: tuple[str, ...] = (),
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``name`` issued by ``ca``, valid for a day; a server certificate
    (with these names and addresses) when ``server_names`` is given."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if server_names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            *(x509.DNSName(n) for n in server_names),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips),
        ]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


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

    server_cert, server_key = _leaf(ca, ca_key, "localhost", server_names, server_ips)
    client_cert, client_key = _leaf(ca, ca_key, "test-client")
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


# -- a client certificate that rotates (RFC 8705 with files replaced under a running auth) ----


def client_files(pki: Pki, directory: Path) -> tuple[Path, Path]:
    """Copies of ``pki``'s client certificate and key in ``directory``: the files a test
    replaces."""
    cert, key = directory / "client.pem", directory / "client.key"
    cert.write_bytes(Path(pki.client_cert).read_bytes())
    key.write_bytes(Path(pki.client_key).read_bytes())
    return cert, key


def mtls_server(pki: Pki, **options: Any) -> OAuthTestServer:
    """The local server over https with ``pki``'s server certificate, taking CLIENT_ID's
    client certificate (CN ``test-client``) for ``tls_client_auth``; not started."""
    return OAuthTestServer({}, certfile=pki.server_cert, keyfile=pki.server_key,
                           client_ca=pki.trust_bundle, tls_clients={CLIENT_ID: "test-client"},
                           **options)


def mtls_auth(server: OAuthTestServer, pki: Pki, cert: Path, key: Path,
              **options: Any) -> ClientCredentialsAuth:
    """``tls_client_auth`` with the certificate files ``cert`` and ``key``; the token
    Session trusts ``pki``'s CA."""
    token_session = requests.Session()
    token_session.verify = pki.ca
    return ClientCredentialsAuth(server.token_url, CLIENT_ID, session=token_session,
                                 cert=(str(cert), str(key)), auth_method="tls_client_auth",
                                 **options)
