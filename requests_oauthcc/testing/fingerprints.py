"""Short, non-secret fingerprints of client credentials: what
:attr:`TokenRequestRecord.credential` holds, so that a test can tell which credential
authenticated a token request (after a rotation: the new one) without the server keeping
the credential itself.

The one rule, used by the server and by tests alike (:func:`credential_fingerprint`):

- ``secret:<first 16 hex digits of SHA-256(secret, UTF-8)>``: ``client_secret_basic``,
  ``client_secret_post``, ``client_secret_jwt`` (the secret that verified the HMAC);
- ``key:<RFC 7638 SHA-256 thumbprint of the public key>``: ``private_key_jwt`` (the
  registered key that verified the assertion);
- ``assertion:<first 16 hex digits of SHA-256(assertion)>``: a platform-issued assertion
  verified through its issuer's JWKS (federation);
- ``cert:<SHA-256 hex of the DER certificate>``: the mTLS methods (the peer's certificate;
  the same value as :attr:`IssuedToken.cert_thumbprint`).
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Mapping
from typing import Any

from .jose import jwk_thumbprint

__all__ = ["credential_fingerprint"]


def credential_fingerprint(
    *,
    secret: str | None = None,
    public_key: Any = None,
    assertion: str | None = None,
    certificate: bytes | str | os.PathLike[str] | None = None,
) -> str:
    """The fingerprint the local server records for one credential; give exactly one.

    ``secret``: a client secret. ``public_key``: a PEM string or bytes (public or private
    key), a JWK dict, or a ``cryptography`` key object (PyJWT and cryptography are
    imported for it). ``assertion``: a compact JWT as sent. ``certificate``: DER or PEM
    bytes, or the path of a PEM or DER file (its first certificate counts).

    Raises :class:`TypeError` unless exactly one is given, :class:`ValueError` for a key
    or certificate that cannot be read.
    """
    given = [value is not None for value in (secret, public_key, assertion, certificate)]
    if sum(given) != 1:
        raise TypeError("give exactly one of secret, public_key, assertion, certificate")
    if secret is not None:
        return "secret:" + _short_digest(secret)
    if assertion is not None:
        return "assertion:" + _short_digest(assertion)
    if certificate is not None:
        return "cert:" + hashlib.sha256(_certificate_der(certificate)).hexdigest()
    return "key:" + key_thumbprint(public_key)


def _short_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _certificate_der(certificate: bytes | str | os.PathLike[str]) -> bytes:
    if not isinstance(certificate, bytes):
        with open(certificate, "rb") as file:
            certificate = file.read()
    marker = b"-----BEGIN CERTIFICATE-----"
    if marker not in certificate:
        return certificate
    start = certificate.index(marker)
    end_marker = b"-----END CERTIFICATE-----"
    end = certificate.find(end_marker, start)
    if end < 0:
        raise ValueError("the PEM certificate has no END line")
    pem = certificate[start:end + len(end_marker)].decode("ascii")
    return ssl.PEM_cert_to_DER_cert(pem)


def key_thumbprint(key: Any) -> str:
    """RFC 7638 thumbprint of ``key``'s public half: a PEM (str or bytes), a JWK dict
    (public or private: only the public members count) or a ``cryptography`` key."""
    if isinstance(key, Mapping):
        return jwk_thumbprint(key)
    return jwk_thumbprint(public_jwk(load_public_key(key)))


def load_public_key(key: Any) -> Any:
    """A ``cryptography`` public key from a PEM (public or private key, str or bytes), a
    JWK dict, or a ``cryptography`` public or private key."""
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, Mapping):
        import jwt

        key = jwt.PyJWK(dict(key)).key
    elif isinstance(key, (str, bytes)):
        data = key.encode("ascii") if isinstance(key, str) else key
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_pem_public_key(data)
    public = getattr(key, "public_key", None)
    return public() if callable(public) else key


def public_jwk(public: Any) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a ``cryptography`` RSA, EC or OKP public key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise ValueError("not an RSA, EC or OKP public key")
    jwk.pop("key_ops", None)  # PyJWT's addition; issuers' JWKS do not carry it
    return jwk
