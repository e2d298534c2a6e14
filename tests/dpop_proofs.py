"""Hand-built DPoP proofs (RFC 9449 §4.2) for the test server's checker.

Built straight from PyJWT's algorithm objects and cryptography keys, not from the
library's client code, so the server is checked against an independent reading.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_part(value: Any) -> str:
    """A JOSE header or payload: JSON (or raw bytes/str as given), base64url."""
    if isinstance(value, bytes):
        return b64url(value)
    if isinstance(value, str):
        return b64url(value.encode())
    return b64url(json.dumps(value).encode())


@dataclass(frozen=True)
class ProofKey:
    """A key pair that signs DPoP proofs with one JWS algorithm."""

    alg: str
    private: Any

    @classmethod
    def generate(cls, alg: str = "ES256") -> ProofKey:
        if alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(),
                     "ES512": ec.SECP521R1()}[alg]
            return cls(alg, ec.generate_private_key(curve))
        if alg.startswith(("RS", "PS")):
            return cls(alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return cls(alg, ed25519.Ed25519PrivateKey.generate())

    @property
    def algorithm(self) -> Any:
        return jwt.algorithms.get_default_algorithms()[self.alg]

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(self.algorithm.to_jwk(self.private.public_key()))
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(self.algorithm.to_jwk(self.private))
        return jwk

    def sign(self, header: Any, claims: Any) -> str:
        """A compact JWS of exactly this header and payload, signed with this key."""
        signing_input = f"{encode_part(header)}.{encode_part(claims)}"
        signature = self.algorithm.sign(signing_input.encode(), self.private)
        return f"{signing_input}.{b64url(signature)}"

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk()}
        return _apply(header, changes)

    def claims(self, htm: str, htu: str, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": htm, "htu": htu,
                                  "iat": int(time.time())}
        return _apply(claims, changes)

    def proof(self, htm: str, htu: str, claims: Mapping[str, Any] | None = None,
              header: Mapping[str, Any] | None = None) -> str:
        """A valid proof for ``htm htu``; ``claims`` set (or, as ``None``, drop) claims,
        ``header`` replaces members of the header the same way."""
        return self.sign(_apply(self.header(), header or {}),
                         _apply(self.claims(htm, htu), claims or {}))


def _apply(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base
