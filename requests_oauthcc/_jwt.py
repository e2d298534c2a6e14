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
from types import ModuleType
from typing import Any, TypeGuard

from .errors import ConfigurationError
from .redaction import SensitiveBytes, hidden, server_text

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HMAC_ALGS = ("HS256", "HS384", "HS512")
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PrivateKeySource = str | bytes | os.PathLike[str] | Mapping[str, Any]
"""A PEM string or bytes, a private JWK (a dict or its JSON text), or a path to a file
holding a PEM or a JWK."""


def require_pyjwt() -> ModuleType:
    """The ``jwt`` module, or an error saying which extra to install."""
    try:
        import jwt
    except ImportError as exc:  # pragma: no cover - exercised in an environment without it
        raise ConfigurationError(
            "JWT client authentication and DPoP need PyJWT and cryptography: "
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


def is_key_path(source: object) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``source`` (as ``private_key=`` takes it) names a file rather than holding
    the key: an :class:`os.PathLike`, or a one-line string that is neither a PEM nor a JWK
    and not longer than any path."""
    if isinstance(source, os.PathLike):
        return True
    return (isinstance(source, str) and bool(source.strip()) and "-----BEGIN" not in source
            and source.lstrip()[:1] != "{" and "\n" not in source and len(source) <= 4096)


def load_signing_key(
    private_key: PrivateKeySource, key_id: str | None = None, alg: str | None = None,
    *, what: str = "private_key", password: str | bytes | None = None,
) -> SigningKey:
    """Load ``private_key`` and pick (or check) the signing algorithm for its type.

    ``private_key``: a PEM (text or bytes), a private JWK (a dict, or its JSON text), or a
    path to a file holding either (a JWK Set of one key too). ``password``: the password of
    an encrypted PEM (PKCS #8 or traditional OpenSSL encryption). ``what`` names the key in
    error messages (the option it came from), which never show the key or the password.
    Raises :class:`ConfigurationError`.
    """
    # Hidden: the frames of a key that fails to load must show neither (a traceback with
    # locals is what error reporters capture).
    private_key, password = hidden(private_key), hidden(password)
    jwt = require_pyjwt()
    material = _key_material(private_key, what)
    if password is not None and not isinstance(password, (str, bytes)):
        raise ConfigurationError(
            f"private_key_password must be a str, bytes or a callable returning one; got "
            f"{type(password).__name__}")
    if isinstance(material, Mapping) and password is not None:
        raise ConfigurationError(
            f"{what} is a JWK, which is never encrypted: a password applies to an encrypted "
            "PEM; remove it")
    if isinstance(material, Mapping):
        if material.get("kty") not in ("EC", "RSA", "OKP"):
            raise ConfigurationError(
                f"{what} is a JWK of kty {server_text(str(material.get('kty')), limit=20)!r}, "
                "which cannot sign: give an RSA, EC or OKP private key")
        if "d" not in material:
            raise ConfigurationError(f"{what} is a public JWK (no \"d\"): give the private key")
        failure = None  # raised outside the except: the loader's frames hold the key
        try:  # its "alg" is checked below, against the key, with a message that says so
            key = jwt.PyJWK({k: v for k, v in material.items() if k != "alg"}).key
        except (jwt.exceptions.PyJWKError, jwt.exceptions.InvalidKeyError, ValueError,
                TypeError, KeyError) as exc:
            failure = type(exc).__name__
        if failure is not None:
            raise ConfigurationError(
                f"{what} JWK could not be loaded ({failure}); it must be a "
                "private RSA, EC or OKP key in JWK form"
            )
        key_id = key_id or material.get("kid")
        alg = alg or material.get("alg")
    else:
        key = _load_pem(material, what, password)
    return SigningKey(key=key, alg=_check_alg(key, alg, what), kid=key_id)


def _key_material(source: object, what: str) -> Mapping[str, Any] | bytes:
    """What ``source`` holds: a JWK (a mapping) or PEM bytes, read from its file if it is
    a path. Text with a line break, or longer than any path, is never taken for one."""
    if isinstance(source, Mapping):
        return source
    if isinstance(source, (str, bytes)) and not source.strip():
        raise ConfigurationError(f"{what} is empty: give a PEM, a JWK or the path of a file")
    if isinstance(source, str) and ("-----BEGIN" in source or source.lstrip()[:1] == "{"):
        source = SensitiveBytes(source.encode())
    elif isinstance(source, str) and not is_key_path(source):  # a line break, or too long
        raise ConfigurationError(
            f"{what} is text that is neither a PEM, a JWK in JSON nor a path (not shown)")
    elif is_key_path(source):
        from ._files import read_small_file, shown_path

        problem = None
        try:
            source = read_small_file(source)
        except OSError as exc:
            problem = (f"{what} file {shown_path(source)} could not be read: {exc.strerror} "
                       "(give the path of a file holding a PEM or a JWK)")
        if problem is not None:
            raise ConfigurationError(problem)
    if not isinstance(source, bytes):
        raise ConfigurationError(
            f"{what} must be a PEM string or bytes, a JWK (dict or JSON), or a path; "
            f"got {type(source).__name__}"
        )
    return _jwk_of(source, what) if source.lstrip()[:1] == b"{" else SensitiveBytes(source)


def _jwk_of(data: bytes, what: str) -> Mapping[str, Any]:
    """The JWK in JSON ``data`` (or the one key of a JWK Set)."""
    import json

    problem: str | None = None
    try:
        document = hidden(json.loads(data))  # a private JWK: no frame may show it
    except json.JSONDecodeError as exc:  # its message holds no content, only a position
        problem = f"is not valid JSON ({exc.msg} at line {exc.lineno})"
    except ValueError:
        problem = "is not UTF-8 JSON"
    if problem is not None:
        raise ConfigurationError(f"{what} {problem}")
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        if len(document["keys"]) != 1:
            raise ConfigurationError(
                f"{what} is a JWK Set of {len(document['keys'])} keys: give one key")
        document = hidden(document["keys"][0])
    if not isinstance(document, dict) or "kty" not in document:
        raise ConfigurationError(
            f"{what} holds no JWK: give a JSON object with \"kty\" (or a JWK Set of one key)")
    return document


def _load_pem(data: bytes, what: str, password: str | bytes | None = None) -> Any:
    from cryptography.hazmat.primitives import serialization

    if data.find(b"PRIVATE KEY") < 0:
        found = ("is empty" if not data.strip() else
                 "holds a public key or a certificate, not a private key"
                 if data.find(b"-----BEGIN") >= 0 else "holds no PEM private key")
        raise ConfigurationError(f"{what} {found}")
    if password is not None and not password:
        raise ConfigurationError(f"{what} could not be loaded: the password given is empty")
    secret = password.encode("utf-8") if isinstance(password, str) else password
    encrypted = data.find(b"ENCRYPTED") >= 0
    kind = None
    try:
        return serialization.load_pem_private_key(data, password=SensitiveBytes(secret)
                                                  if secret is not None else None)
    except (ValueError, TypeError):  # their messages say nothing we do not say better
        if encrypted and secret is None:
            kind = "it is encrypted: give its password" + (
                " (private_key_password=, or OAUTH_PRIVATE_KEY_PASSWORD for from_env and the "
                "CLI)" if what.startswith("private_key") else "")
        elif encrypted:
            kind = "the password given is not this key's password (or the key is damaged)"
        elif secret is not None:
            kind = ("a password was given, but the key is not encrypted: remove the password, "
                    "or give the encrypted key")
        else:
            kind = "unreadable PEM" + (" (its line breaks are written as \\n: use real ones)"
                                       if data.find(b"\\n") >= 0 else "")
    raise ConfigurationError(f"{what} could not be loaded: {kind}")


def key_algs(key: Any) -> tuple[str, ...]:
    """The JWS algorithms ``key`` (a cryptography private key) can sign with, preferred
    first; :class:`ConfigurationError` for a key that cannot sign JWTs."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigurationError(
                f"an RSA key of {key.key_size} bits is too short to sign JWTs: RFC 7518 §3.3 "
                "asks for 2048 bits or more")
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


def _check_alg(key: Any, alg: str | None, what: str = "private_key") -> str:
    allowed = key_algs(key)
    if alg is None:
        return allowed[0]
    if alg not in allowed:
        name = "signing_alg" if what == "private_key" else f"the algorithm of {what}"
        raise ConfigurationError(
            f"{name} {alg!r} does not fit this key; use one of: {', '.join(allowed)}"
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
