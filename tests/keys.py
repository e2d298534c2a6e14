"""Throw-away signing keys for the JWT client authentication tests."""

from __future__ import annotations

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
