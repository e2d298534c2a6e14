"""How the local server authenticates clients: every method the library implements.

Written from the RFCs (6749 §2.3.1, 7523 §3, 8705 §2), not from the library's code, so the
tests check one reading against another.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class OAuthFailure(Exception):
    """An RFC 6749 §5.2 error the token endpoint answers with."""

    def __init__(self, status: int, error: str, description: str, basic: bool = False) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.basic = basic


@dataclass
class ClientRegistry:
    """The registered clients.

    ``secrets``: client id -> secret (``client_secret_*`` methods).
    ``keys``: client id -> public key, PEM or JWK dict (``private_key_jwt``).
    ``certificates``: client id -> certificate subject CN (the mTLS methods).
    """

    secrets: dict[str, str] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def authenticate_client(
    registry: ClientRegistry,
    authorization: str,
    form: Mapping[str, list[str]],
    peer_cert: Mapping[str, Any] | None,
    *,
    audiences: tuple[str, ...],
) -> tuple[str, str]:
    """``(client_id, method)`` of an authenticated client, or an :class:`OAuthFailure`."""
    basic = authorization.lower().startswith("basic ")
    used = [basic, "client_secret" in form, "client_assertion" in form]
    if sum(used) > 1:
        raise OAuthFailure(400, "invalid_request", "more than one client authentication method")
    if basic:
        client_id, secret = _decode_basic(authorization[6:].strip())
        _check_secret(registry, client_id, secret, basic=True)
        return client_id, "client_secret_basic"
    if "client_secret" in form:
        client_id = _one(form, "client_id")
        _check_secret(registry, client_id, _one(form, "client_secret"), basic=False)
        return client_id, "client_secret_post"
    if "client_assertion" in form:
        return _check_assertion(registry, form, audiences)
    client_id = form.get("client_id", [""])[0]
    if client_id and peer_cert is not None:
        expected = registry.certificates.get(client_id)
        if expected is None or _common_name(peer_cert) != expected:
            raise OAuthFailure(401, "invalid_client", "certificate does not match the client")
        return client_id, "tls_client_auth"
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
    expected = registry.secrets.get(client_id)
    if expected is None or not secrets.compare_digest(expected.encode(), secret.encode()):
        raise OAuthFailure(401, "invalid_client", "unknown client or wrong secret", basic)


def _check_assertion(
    registry: ClientRegistry, form: Mapping[str, list[str]], audiences: tuple[str, ...]
) -> tuple[str, str]:
    import jwt

    if _one(form, "client_assertion_type") != JWT_BEARER:
        raise OAuthFailure(400, "invalid_request", "unsupported client_assertion_type")
    assertion = _one(form, "client_assertion")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise OAuthFailure(401, "invalid_client", "malformed client assertion") from exc
    client_id = form.get("client_id", [claims.get("sub", "")])[0]
    alg = header.get("alg", "none")
    if alg.startswith("HS"):
        method, key = "client_secret_jwt", registry.secrets.get(client_id, "").encode() or None
    else:
        method, key = "private_key_jwt", registry.keys.get(client_id)
        if isinstance(key, Mapping):
            key = jwt.PyJWK(dict(key)).key
    if key is None or alg == "none":
        raise OAuthFailure(401, "invalid_client", f"no {method} key for this client")
    try:
        verified = jwt.decode(
            assertion, key, algorithms=[alg], audience=list(audiences),
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise OAuthFailure(401, "invalid_client", f"assertion rejected: {exc}") from exc
    if not verified["iss"] == verified["sub"] == client_id:
        raise OAuthFailure(401, "invalid_client", "iss and sub must be the client id")
    with registry.lock:
        if verified["jti"] in registry.seen_jti:
            raise OAuthFailure(401, "invalid_client", "assertion replayed (jti seen before)")
        registry.seen_jti.add(verified["jti"])
    return client_id, method


def _common_name(cert: Mapping[str, Any]) -> str | None:
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None
