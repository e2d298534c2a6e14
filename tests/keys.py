"""Throw-away signing keys for the JWT client authentication tests."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str
    private: Any
    public: Any

    def private_jwk(self, kid: str | None = None) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.get_default_algorithms()[
            self.family].to_jwk(self.private))
        if kid:
            jwk["kid"] = kid
        return jwk

    def encrypted_pem(self, password: bytes, traditional: bool = False) -> bytes:
        """The private key as an encrypted PEM: PKCS #8, or the traditional OpenSSL form."""
        fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
               else serialization.PrivateFormat.PKCS8)
        return bytes(self.private.private_bytes(serialization.Encoding.PEM, fmt,
                                                serialization.BestAvailableEncryption(password)))

    @property
    def family(self) -> str:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return "RS256"
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            return "ES256"
        return "EdDSA"


def _pair(private: Any) -> KeyPair:
    return KeyPair(
        private_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        public_pem=private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
        ).decode(),
        private=private,
        public=private.public_key(),
    )


def rsa_pair() -> KeyPair:
    return _pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_pair(curve: ec.EllipticCurve | None = None) -> KeyPair:
    return _pair(ec.generate_private_key(curve or ec.SECP256R1()))


def ed25519_pair() -> KeyPair:
    return _pair(ed25519.Ed25519PrivateKey.generate())


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                       "OKP": ("crv", "kty", "x")}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a JWK, computed here from the RFC (not the client's
    code): the required members, sorted, no whitespace."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_thumbprint(pair: KeyPair) -> str:
    """The RFC 7638 thumbprint of a pair's public key."""
    family = jwt.algorithms.get_default_algorithms()[pair.family]
    return jwk_thumbprint(json.loads(family.to_jwk(pair.public)))


def verified_proof(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DPoP proof's header and claims, its signature verified with the key it embeds
    (RFC 9449 §4.3 checks 5-6; PyJWT, not the client's code)."""
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
    key = jwt.PyJWK(header["jwk"], algorithm=header["alg"])
    claims = jwt.decode(proof, key.key, algorithms=[header["alg"]])
    return header, claims
