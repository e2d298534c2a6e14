"""How the local server authenticates clients: every method the library implements.

Written from the RFCs (6749 §2.3.1, 7523 §3, 8705 §2), not from the library's code, so the
tests check one reading against another. Platform-issued assertions (RFC 7521 §4.2 with a
federated issuer) are federation.py's to check.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from .federation import Federation, FederationRefused
from .fingerprints import credential_fingerprint, key_thumbprint

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class OAuthFailure(Exception):
    """An RFC 6749 §5.2 error the token endpoint answers with."""

    def __init__(self, status: int, error: str, description: str, basic: bool = False) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.basic = basic


@dataclass(frozen=True)
class Authenticated:
    """An authenticated client: its id, the method, and the :func:`credential_fingerprint`
    of the credential that did it (which secret, key, assertion or certificate)."""

    client_id: str
    method: str
    credential: str


@dataclass
class ClientRegistry:
    """The registered clients; the dicts may be changed while the server runs.

    ``secrets``: client id -> secret, or a sequence of secrets all accepted (a rotation:
    old and new) (``client_secret_*`` methods).
    ``keys``: client id -> public key, PEM or JWK dict, or a sequence of them
    (``private_key_jwt``).
    ``certificates``: client id -> certificate subject CN (the mTLS methods).
    ``federation``: the clients authenticating with platform-issued assertions.
    """

    secrets: dict[str, str | Sequence[str]] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    federation: Federation = field(default_factory=Federation)
    seen_jti: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def secrets_of(self, client_id: str) -> tuple[str, ...]:
        """The client's accepted secrets (none for an unknown client)."""
        value = self.secrets.get(client_id)
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else tuple(value)

    def keys_of(self, client_id: str) -> tuple[Any, ...]:
        """The client's accepted public keys (none for an unknown client)."""
        value = self.keys.get(client_id)
        if value is None:
            return ()
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def authenticate_client(
    registry: ClientRegistry,
    authorization: str,
    form: Mapping[str, list[str]],
    peer_cert: Mapping[str, Any] | None,
    *,
    audiences: tuple[str, ...],
    peer_der: bytes | None = None,
) -> Authenticated:
    """The authenticated client, or an :class:`OAuthFailure`. ``peer_cert``: the verified
    client certificate as :meth:`ssl.SSLSocket.getpeercert` gives it, ``peer_der`` the
    same in DER."""
    basic = authorization.lower().startswith("basic ")
    used = [basic, "client_secret" in form, "client_assertion" in form]
    if sum(used) > 1:
        raise OAuthFailure(400, "invalid_request", "more than one client authentication method")
    if basic:
        client_id, secret = _decode_basic(authorization[6:].strip())
        _check_secret(registry, client_id, secret, basic=True)
        return Authenticated(client_id, "client_secret_basic",
                             credential_fingerprint(secret=secret))
    if "client_secret" in form:
        client_id, secret = _one(form, "client_id"), _one(form, "client_secret")
        _check_secret(registry, client_id, secret, basic=False)
        return Authenticated(client_id, "client_secret_post",
                             credential_fingerprint(secret=secret))
    if "client_assertion" in form:
        return _check_assertion(registry, form, audiences)
    client_id = form.get("client_id", [""])[0]
    if client_id and peer_cert is not None and peer_der:
        expected = registry.certificates.get(client_id)
        if expected is None or _common_name(peer_cert) != expected:
            raise OAuthFailure(401, "invalid_client", "certificate does not match the client")
        return Authenticated(client_id, "tls_client_auth",
                             credential_fingerprint(certificate=peer_der))
    raise OAuthFailure(401, "invalid_client", "no client authentication", basic=True)


def _one(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name, [])
    if len(values) != 1:
        raise OAuthFailure(400, "invalid_request", f"exactly one {name} is required")
    return values[0]


def _decode_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthFailure(401, "invalid_client", "bad Basic header", basic=True) from exc
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep:
        raise OAuthFailure(401, "invalid_client", "bad Basic header", basic=True)
    return unquote_plus(raw_id), unquote_plus(raw_secret)


def _check_secret(registry: ClientRegistry, client_id: str, secret: str, *, basic: bool) -> None:
    matches = [secrets.compare_digest(expected.encode(), secret.encode())
               for expected in registry.secrets_of(client_id)]  # all compared, in constant time
    if not any(matches):
        raise OAuthFailure(401, "invalid_client", "unknown client or wrong secret", basic)


def _check_assertion(
    registry: ClientRegistry, form: Mapping[str, list[str]], audiences: tuple[str, ...]
) -> Authenticated:
    import jwt

    if _one(form, "client_assertion_type") != JWT_BEARER:
        raise OAuthFailure(400, "invalid_request", "unsupported client_assertion_type")
    assertion = _one(form, "client_assertion")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise OAuthFailure(401, "invalid_client", "malformed client assertion") from exc
    form_client_id = form.get("client_id", [None])[0]
    if registry.federation.applies(claims, form_client_id):
        try:
            client_id, credential = registry.federation.verify(
                assertion, header, claims, form_client_id, audiences)
        except FederationRefused as refused:
            raise OAuthFailure(401, "invalid_client", refused.description) from None
        return Authenticated(client_id, "private_key_jwt", credential)
    client_id = form_client_id if form_client_id is not None else claims.get("sub", "")
    alg = header.get("alg", "none")
    if not isinstance(client_id, str) or not isinstance(alg, str):
        raise OAuthFailure(401, "invalid_client", "the client assertion's sub or alg is odd")
    method, keys = _registered_keys(registry, client_id, alg)
    verified, credential = _verify_with_any(assertion, keys, alg, audiences)
    if not verified["iss"] == verified["sub"] == client_id:
        raise OAuthFailure(401, "invalid_client", "iss and sub must be the client id")
    with registry.lock:
        if verified["jti"] in registry.seen_jti:
            raise OAuthFailure(401, "invalid_client", "assertion replayed (jti seen before)")
        registry.seen_jti.add(verified["jti"])
    return Authenticated(client_id, method, credential)


def _registered_keys(
    registry: ClientRegistry, client_id: str, alg: str
) -> tuple[str, list[tuple[Any, str]]]:
    """The method an assertion signed with ``alg`` uses, and the client's keys for it
    with their credential fingerprints (RFC 7523 §3: HS* is ``client_secret_jwt``)."""
    import jwt

    if alg.startswith("HS"):
        method = "client_secret_jwt"
        keys: list[tuple[Any, str]] = [(secret.encode(), credential_fingerprint(secret=secret))
                                       for secret in registry.secrets_of(client_id) if secret]
    else:
        method = "private_key_jwt"
        keys = [(jwt.PyJWK(dict(key)).key if isinstance(key, Mapping) else key,
                 "key:" + key_thumbprint(key)) for key in registry.keys_of(client_id)]
    if not keys or alg == "none":
        raise OAuthFailure(401, "invalid_client", f"no {method} key for this client")
    return method, keys


def _verify_with_any(
    assertion: str, keys: list[tuple[Any, str]], alg: str, audiences: tuple[str, ...]
) -> tuple[dict[str, Any], str]:
    """The verified claims and the fingerprint of the key that verified them: any of the
    client's keys may have signed (several during a rotation)."""
    import jwt

    failure: Exception | None = None
    for key, fingerprint in keys:
        try:
            verified: dict[str, Any] = jwt.decode(
                assertion, key, algorithms=[alg], audience=list(audiences),
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError, ValueError) as exc:
            # not this key (TypeError, ValueError: a key of another type than alg's)
            if failure is None or isinstance(exc, jwt.InvalidSignatureError):
                failure = exc
        except jwt.PyJWTError as exc:  # this key verified it, the claims are wrong
            raise OAuthFailure(401, "invalid_client", f"assertion rejected: {exc}") from exc
        else:
            return verified, fingerprint
    reason = ("the signature does not verify with the client's keys"
              if isinstance(failure, jwt.InvalidSignatureError) else
              f"no key of the client fits the assertion's alg {alg!r}")
    raise OAuthFailure(401, "invalid_client", f"assertion rejected: {reason}") from failure


def _common_name(cert: Mapping[str, Any]) -> str | None:
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None
