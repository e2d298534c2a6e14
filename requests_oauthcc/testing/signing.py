"""A fake platform's signing keys: generated on demand, published as JWKs (RFC 7517) with a
``kid`` (their RFC 7638 thumbprint, as Kubernetes does), signing JWTs (RFC 7519) with PyJWT.

PyJWT and cryptography (the ``[jwt]`` extra) are imported when a key is generated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .fingerprints import public_jwk
from .jose import jwk_thumbprint

__all__ = ["SIGNING_ALGS", "SigningKey"]

SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA")
"""The JWS algorithms a :class:`SigningKey` can be generated for."""


def _generate(alg: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curves: dict[str, ec.EllipticCurve] = {
        "ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    if alg in curves:
        return ec.generate_private_key(curves[alg])
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class SigningKey:
    """One signing key: ``kid``, ``alg``, the private key (kept out of ``repr``) and
    ``jwk``, its public JWK with ``kid``, ``alg`` and ``use: "sig"``."""

    kid: str
    alg: str
    jwk: Mapping[str, Any]
    private: Any = field(repr=False, compare=False)

    @classmethod
    def generate(cls, alg: str = "RS256") -> SigningKey:
        """A fresh key for ``alg`` (one of :data:`SIGNING_ALGS`; RSA keys have 2048 bits).
        Raises :class:`ValueError` for another algorithm."""
        if alg not in SIGNING_ALGS:
            raise ValueError(f"cannot generate a signing key for alg {alg!r}")
        private = _generate(alg)
        jwk = public_jwk(private.public_key())
        kid = jwk_thumbprint(jwk)
        jwk.update(kid=kid, alg=alg, use="sig")
        return cls(kid=kid, alg=alg, jwk=MappingProxyType(jwk), private=private)

    def sign(self, claims: Mapping[str, Any], *, typ: str = "JWT") -> str:
        """The compact JWS of ``claims``, with ``alg``, ``kid`` and ``typ`` in its header."""
        import jwt

        return jwt.encode(dict(claims), self.private, algorithm=self.alg,
                          headers={"kid": self.kid, "typ": typ})
