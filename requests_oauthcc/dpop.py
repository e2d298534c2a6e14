"""DPoP keys (RFC 9449): the key a client proves possession of with every request.

A :class:`DPoPKey` is a value: a private key and the algorithm it signs proofs with. What
does not depend on the request is computed once, when the key is made: the public JWK
(RFC 7517, required members only), its RFC 7638 thumbprint and the encoded JOSE header of
every proof. :meth:`DPoPKey.proof` then costs one JSON encoding and one signature.

Needs the ``[jwt]`` extra (PyJWT with cryptography), imported only when a key is made or
loaded, so ``import requests_oauthcc`` stays light.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._jwt import PrivateKeySource, key_algs, load_signing_key, require_pyjwt
from ._urls import target_uri
from .errors import ConfigurationError
from .redaction import SensitiveBytes, SensitiveText, hidden

__all__ = ["DPoPKey", "access_token_hash", "b64url"]

_GENERATED = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "RS256": "RSA",
              "PS256": "RSA", "EdDSA": "Ed25519"}
"""What :meth:`DPoPKey.generate` makes for each algorithm."""

_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                     "OKP": ("crv", "kty", "x")}
"""The members of a public JWK that its RFC 7638 thumbprint covers, in order."""


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url of the SHA-256 of the token's ASCII bytes (RFC 9449 §4.2)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


@dataclass(frozen=True)
class DPoPKey:
    """A private key that signs DPoP proofs, with its algorithm (RFC 9449 §4).

    Make one with :meth:`generate` (a new key in memory: each process then has its own
    key and its own tokens) or :meth:`load` (a PEM or a JWK, the same forms as
    ``private_key=``: a fleet sharing one key shares its tokens through a shared cache).

    ``alg``: the JWS algorithm of the proofs; ``algs``: those this key can use (an RSA
    key several, an EC or Ed25519 key one). ``thumbprint``: the RFC 7638 SHA-256
    thumbprint of the public key, the ``jkt`` a server binds tokens to; ``public_jwk``:
    the public key as sent in every proof. ``repr`` shows the algorithm and the thumbprint
    only. Pickles (and deep-copies) as PKCS #8 DER: a pickle holds the private key.
    """

    key: Any = field(repr=False, compare=False)
    alg: str
    algs: tuple[str, ...] = field(init=False, repr=False)
    thumbprint: str = field(init=False)
    public_jwk: Mapping[str, str] = field(init=False, repr=False, compare=False)
    _header: bytes = field(init=False, repr=False, compare=False)
    _signer: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        jwt = require_pyjwt()
        algs = key_algs(self.key)
        if self.alg not in algs:
            raise ConfigurationError(
                f"this DPoP key cannot sign {self.alg!r}; it can sign: {', '.join(algs)}")
        signer = jwt.get_algorithm_by_name(self.alg)
        full = signer.to_jwk(self.key.public_key(), as_dict=True)
        public = {name: full[name] for name in _REQUIRED_MEMBERS[full["kty"]]}
        canonical = json.dumps(public, separators=(",", ":"), sort_keys=True)
        header = json.dumps({"typ": "dpop+jwt", "alg": self.alg, "jwk": public},
                            separators=(",", ":"))
        set_field = object.__setattr__
        set_field(self, "algs", algs)
        set_field(self, "public_jwk", public)
        set_field(self, "thumbprint", b64url(hashlib.sha256(canonical.encode()).digest()))
        set_field(self, "_header", b64url(header.encode()).encode("ascii"))
        set_field(self, "_signer", signer)

    @classmethod
    def generate(cls, alg: str = "ES256") -> DPoPKey:
        """A new key for ``alg``: ``ES256`` (P-256, the default), ``ES384``, ``ES512``,
        ``RS256`` or ``PS256`` (RSA 2048 bits), or ``EdDSA`` (Ed25519).

        Raises :class:`~requests_oauthcc.ConfigurationError` for another algorithm, or
        when the ``[jwt]`` extra is not installed.
        """
        require_pyjwt()
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        kind = _GENERATED.get(alg)
        if kind is None:
            raise ConfigurationError(
                f"DPoPKey.generate cannot make a key for {alg!r}; use one of: "
                f"{', '.join(_GENERATED)}")
        key: Any
        if kind == "RSA":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "Ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            curves: dict[str, ec.EllipticCurve] = {
                "P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
            key = ec.generate_private_key(curves[kind])
        return cls(key, alg)

    @classmethod
    def load(cls, source: PrivateKeySource, alg: str | None = None, *,
             password: str | bytes | None = None) -> DPoPKey:
        """The key in ``source``: a PEM string or bytes, a private JWK (a dict or its JSON
        text; its ``alg`` is used when ``alg`` is not given), or a path to a file holding
        either (the same forms as ``private_key=``), read once. ``password``: for an
        encrypted PEM.

        ``alg`` defaults to the key's first algorithm: ``RS256`` for RSA, the curve's for
        EC, ``EdDSA`` for Ed25519. Raises :class:`~requests_oauthcc.ConfigurationError`
        naming what is wrong (never the key).
        """
        source, password = hidden(source), hidden(password)  # no frame shows them
        loaded = load_signing_key(source, what="DPoP key", password=password)
        return cls(loaded.key, alg or loaded.alg)

    def with_alg(self, alg: str) -> DPoPKey:
        """This key, signing with ``alg`` (one of :attr:`algs`)."""
        return self if alg == self.alg else replace(self, alg=alg)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> SensitiveText:
        """A fresh proof for one request (RFC 9449 §4.2).

        Claims: a unique ``jti``, ``htm`` = ``method``, ``htu`` = ``url`` without its query,
        fragment and user info (RFC 9110 §7.1), ``iat`` (seconds, wall clock), and when
        given ``ath`` (the hash of ``access_token``, for a resource request) and ``nonce``
        (the server's latest).
        """
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": target_uri(url),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode()).encode("ascii")
        signing_input = self._header + b"." + payload
        signature = self._signer.sign(signing_input, self.key)
        return SensitiveText(f"{signing_input.decode('ascii')}.{b64url(signature)}")

    def __reduce__(self) -> tuple[Any, ...]:
        from cryptography.hazmat.primitives import serialization

        der = self.key.private_bytes(serialization.Encoding.DER,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        return (_key_from_der, (SensitiveBytes(der), self.alg))


def _key_from_der(der: bytes, alg: str) -> DPoPKey:
    """A pickled :class:`DPoPKey` back: the key from its PKCS #8 DER form."""
    from cryptography.hazmat.primitives import serialization

    return DPoPKey(serialization.load_der_private_key(der, password=None), alg)
