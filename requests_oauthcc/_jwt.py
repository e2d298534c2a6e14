"""JWT client assertions (RFC 7523 §2.2): loading signing keys and signing assertions.

Needs the ``[jwt]`` extra (PyJWT with cryptography), imported only when a JWT method is
configured, so ``import requests_oauthcc`` stays light.
"""

from __future__ import annotations

import os
import secrets
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ConfigurationError
from .redaction import SensitiveBytes

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HMAC_ALGS = ("HS256", "HS384", "HS512")
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PrivateKeySource = str | bytes | os.PathLike[str] | Mapping[str, Any]
"""A PEM string or bytes, a path to a PEM file, or a private JWK as a dict."""


def require_pyjwt() -> ModuleType:
    """The ``jwt`` module, or an error saying which extra to install."""
    try:
        import jwt
    except ImportError as exc:  # pragma: no cover - exercised in an environment without it
        raise ConfigurationError(
            "JWT client authentication needs PyJWT and cryptography: "
            "pip install 'requests-oauthcc[jwt]'"
        ) from exc
    return jwt


@dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign assertions, with its algorithm and key id.

    ``key``: a cryptography private key, or bytes (the HMAC key of ``client_secret_jwt``).
    Pickles (and deep-copies) as PKCS #8 DER bytes, since cryptography's key objects do
    not pickle: a pickle holds the private key in the clear.
    """

    key: Any = field(repr=False)
    alg: str
    kid: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        if isinstance(self.key, (bytes, str)):
            return (SigningKey, (self.key, self.alg, self.kid))
        from cryptography.hazmat.primitives import serialization

        return (_signing_key_from_der, (
            SensitiveBytes(self.key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )),
            self.alg, self.kid,
        ))


def _signing_key_from_der(der: bytes, alg: str, kid: str | None) -> SigningKey:
    """A pickled :class:`SigningKey` back: the key from its PKCS #8 DER form."""
    from cryptography.hazmat.primitives import serialization

    return SigningKey(serialization.load_der_private_key(der, password=None), alg, kid)


def load_signing_key(
    private_key: PrivateKeySource, key_id: str | None = None, alg: str | None = None,
    *, what: str = "private_key",
) -> SigningKey:
    """Load ``private_key`` and pick (or check) the signing algorithm for its type.

    ``what`` names the key in error messages (the option it came from)."""
    jwt = require_pyjwt()
    if isinstance(private_key, Mapping):
        failure = None  # raised outside the except: the loader's frames hold the key
        try:
            key = jwt.PyJWK(dict(private_key)).key
        except (jwt.exceptions.PyJWKError, jwt.exceptions.InvalidKeyError, ValueError,
                TypeError, KeyError) as exc:
            failure = type(exc).__name__
        if failure is not None:
            raise ConfigurationError(
                f"{what} JWK could not be loaded ({failure}); it must be a "
                "private RSA, EC or OKP key in JWK form"
            )
        key_id = key_id or private_key.get("kid")
        alg = alg or private_key.get("alg")
    else:
        key = _load_pem(private_key, what)
    return SigningKey(key=key, alg=_check_alg(key, alg), kid=key_id)


def _load_pem(source: str | bytes | os.PathLike[str], what: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    data: bytes
    if isinstance(source, bytes):
        data = SensitiveBytes(source)
    elif isinstance(source, str) and "-----BEGIN" in source:
        data = SensitiveBytes(source.encode())
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            data = SensitiveBytes(path.read_bytes())
        except OSError as exc:
            raise ConfigurationError(
                f"{what} file {str(path)!r} could not be read: {exc.strerror}"
            ) from None
    else:
        raise ConfigurationError(
            f"{what} must be a PEM string or bytes, a path, or a JWK dict; "
            f"got {type(source).__name__}"
        )
    if data.find(b"PRIVATE KEY") < 0:
        raise ConfigurationError(
            f"{what} is not a PEM private key (a public key or certificate was given?)"
        )
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        kind = "encrypted keys are not supported" if "password" in str(exc).lower() else (
            "unreadable PEM")
    raise ConfigurationError(f"{what} could not be loaded: {kind}")


def key_algs(key: Any) -> tuple[str, ...]:
    """The JWS algorithms ``key`` (a cryptography private key) can sign with, preferred
    first; :class:`ConfigurationError` for a key that cannot sign JWTs."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return _RSA_ALGS
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve_alg = _EC_ALGS.get(key.curve.name)
        if curve_alg is None:
            raise ConfigurationError(f"EC curve {key.curve.name} is not supported for JWTs")
        return (curve_alg,)
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return ("EdDSA",)
    raise ConfigurationError(
        f"a private key of type {type(key).__name__} cannot sign: give an RSA, EC or "
        "Ed25519 private key"
    )


def _check_alg(key: Any, alg: str | None) -> str:
    allowed = key_algs(key)
    if alg is None:
        return allowed[0]
    if alg not in allowed:
        raise ConfigurationError(
            f"signing_alg {alg!r} does not fit this key; use one of: {', '.join(allowed)}"
        )
    return alg


def sign_assertion(key: SigningKey, *, client_id: str, audience: str, lifetime: float) -> str:
    """A fresh client assertion: iss = sub = client id, unique jti, short exp."""
    jwt = require_pyjwt()
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": now,
        "exp": now + max(1, int(lifetime)),
    }
    headers = {"kid": key.kid} if key.kid else None
    with warnings.catch_warnings():
        # PyJWT warns of an HMAC key shorter than the hash (client_secret_jwt with a short
        # secret, which the server issued): under -W error that warning would escape as an
        # exception that is not an OAuthError. make_client_auth logs it once instead.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        token: str = jwt.encode(claims, key.key, algorithm=key.alg, headers=headers)
    return token
