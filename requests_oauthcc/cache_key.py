"""Naming a token in a shared cache: everything that makes a token different, the
credential included, hashed so that the key reveals nothing.

The credential enters as a fingerprint: a slow hash (PBKDF2-HMAC-SHA256) of a client
secret, so that a key readable in Redis or a directory does not let anyone test guesses of
a weak secret quickly; the public key's digest for a private key; the certificate file's
digest for the mTLS methods.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from .redaction import Secret, reveal

__all__ = [
    "KEY_ITERATIONS",
    "KEY_PATTERN",
    "CacheKey",
    "CredentialFingerprint",
    "cache_key",
    "key_salt",
    "secret_fingerprint",
]

KEY_ITERATIONS: Final = 150_000
"""PBKDF2-HMAC-SHA256 iterations naming a client secret in a cache key (~40 ms, once)."""

KEY_PATTERN: Final = r"oauthcc-[0-9a-f]{40}"
"""What every key :func:`cache_key` makes matches in full (a regular expression): a
:class:`~requests_oauthcc.file_cache.FileTokenCache` sweep removes files of such keys only."""

_KEY_SALT_LABEL: Final = b"requests-oauthcc cache key v1"


def cache_key(
    *,
    token_url: str,
    client_id: str,
    auth_method: str,
    scope: str | None,
    audience: str | None,
    resources: Sequence[str],
    extra_params: Iterable[tuple[str, str]],
    credential: str,
    dpop_jkt: str | None = None,
) -> str:
    """A key naming everything that makes a token different, hashed (it reveals nothing).

    Scope tokens and resources are order-insensitive. ``credential`` is the
    :class:`CredentialFingerprint` of the credential the client authenticates with, so
    that auth objects holding different secrets or keys for the same client never share
    a token (one with a wrong secret gets the server's error, not another's token).
    ``dpop_jkt``: the RFC 7638 thumbprint of the DPoP key, for tokens bound to it (a
    DPoP-bound token is useless without its private key, RFC 9449 §6).
    """
    material = {
        "token_url": token_url,
        "client_id": client_id,
        "auth_method": auth_method,
        "scope": sorted(set(scope.split())) if scope else None,
        "audience": audience,
        "resource": sorted(resources),
        "extra": sorted(extra_params),
        "credential": credential,
    }
    if dpop_jkt is not None:  # absent otherwise: keys of tokens cached before stay the same
        material["dpop_jkt"] = dpop_jkt
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return f"oauthcc-{digest[:40]}"


class CacheKey:
    """The :func:`cache_key` of one auth object, computed when called.

    ``credential``: a :class:`CredentialFingerprint` (called each time, so the key follows
    a rotated secret); ``fields``: the other keyword arguments of :func:`cache_key`.
    """

    def __init__(self, credential: Callable[[], str], **fields: Any) -> None:
        self._credential = credential
        self._fields = fields

    def __call__(self) -> str:
        return cache_key(**self._fields, credential=self._credential())

    def __repr__(self) -> str:
        return f"CacheKey({self._credential!r})"


def key_salt(token_url: str, client_id: str) -> bytes:
    """The fixed PBKDF2 salt of one client: SHA-256 of
    ``b"requests-oauthcc cache key v1" NUL token_url NUL client_id`` (UTF-8)."""
    material = b"\0".join((_KEY_SALT_LABEL, token_url.encode(), client_id.encode()))
    return hashlib.sha256(material).digest()


def secret_fingerprint(secret: str, token_url: str, client_id: str) -> str:
    """PBKDF2-HMAC-SHA256 of ``secret`` (:data:`KEY_ITERATIONS`, salt :func:`key_salt`), hex.

    Deliberately slow: whoever reads a cache key cannot test guesses of a weak secret
    quickly, and the salt (token URL and client id) makes one client's table useless for
    another's.
    """
    return hashlib.pbkdf2_hmac(
        "sha256", secret.encode("utf-8"), key_salt(token_url, client_id), KEY_ITERATIONS
    ).hex()


class CredentialFingerprint:
    """A non-reversible name of the credentials one auth object authenticates with.

    Called (no arguments) when a cache key is needed: at each shared-cache fetch, never on
    the per-request path. Returns a SHA-256 hex digest over, for each credential present:

    - ``secret`` (a str, :class:`~requests_oauthcc.redaction.Secret`, or a zero-argument
      callable such as :class:`~requests_oauthcc.sources.SecretFile`):
      :func:`secret_fingerprint` (PBKDF2, ~40 ms). A callable is resolved at every call, so
      the key follows a rotated secret: processes holding the new secret share tokens
      under a new key, those still holding the old one keep theirs. The last value and its
      digest are kept, so the slow hash runs once per distinct secret value.
    - ``private_key`` (``private_key_jwt``, a :class:`~requests_oauthcc.PrivateKey`): SHA-256
      of its current public key (SubjectPublicKeyInfo DER), computed again only when the
      key rotates; a public value needs no slow hash.
    - ``assertion`` (``client_assertion=``, a callable): SHA-256 of the current assertion's
      ``iss``, ``sub`` and ``aud`` (read, not verified): the identity the platform vouches
      for and whom to, which stay the same while the platform rotates the assertion itself.
    - ``cert`` (mTLS methods, as requests takes it): SHA-256 of the certificate file's
      contents, read at every call (requests reads it at each connection too); a file that
      cannot be read is named by its path.

    Raises what resolving the secret raises (e.g. ``ConfigurationError`` for an unreadable
    secret file). Pickles without its memo.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        secret: object = None,
        private_key: Any = None,
        cert: str | tuple[str, str] | None = None,
        assertion: Callable[[], str] | None = None,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._secret = secret
        self._private_key = private_key
        self._assertion = assertion
        self._cert = cert
        self._memo: tuple[Secret, str] | None = None
        self._key_memo: tuple[Any, str] | None = None

    def __call__(self) -> str:
        parts = []
        if self._secret is not None:
            parts.append("secret:" + self._secret_digest())
        if self._private_key is not None:
            parts.append("key:" + self._public_key_digest())
        if self._assertion is not None:
            parts.append("assertion:" + _assertion_identity(self._assertion))
        if self._cert:
            parts.append("cert:" + _cert_digest(self._cert))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _secret_digest(self) -> str:
        from .client_auth import resolve_secret

        source: Any = self._secret
        if isinstance(source, Secret):
            source = source.reveal()
        value = reveal(resolve_secret(source))
        memo = self._memo
        if memo is not None and hmac.compare_digest(memo[0].reveal().encode(), value.encode()):
            return memo[1]
        digest = secret_fingerprint(value, self._token_url, self._client_id)
        self._memo = (Secret(value), digest)
        return digest

    def _public_key_digest(self) -> str:
        key = self._private_key.current().key
        memo = self._key_memo
        if memo is None or memo[0] is not key:
            memo = self._key_memo = (key, _public_key_digest(key))
        return memo[1]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_memo": None, "_key_memo": None}

    def __repr__(self) -> str:
        kinds = [name for name, value in (("secret", self._secret),
                                          ("private_key", self._private_key),
                                          ("assertion", self._assertion),
                                          ("cert", self._cert)) if value]
        return f"CredentialFingerprint({self._client_id!r}, {'+'.join(kinds) or 'none'})"


def _public_key_digest(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _assertion_identity(source: Callable[[], str]) -> str:
    from ._peek import peek
    from .sources import current_assertion

    claims = peek(current_assertion(source))[1]
    identity = json.dumps([claims.get("iss"), claims.get("sub"), claims.get("aud")],
                          default=str)
    return hashlib.sha256(identity.encode()).hexdigest()


def _cert_digest(cert: str | tuple[str, str]) -> str:
    path = cert[0] if isinstance(cert, tuple) else cert
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, TypeError, ValueError):
        return hashlib.sha256(b"path:" + str(path).encode("utf-8", "surrogatepass")).hexdigest()


