"""Where tokens live between processes: the :class:`TokenCache` interface and its helpers.

A cache stores one :class:`CacheEntry` per key, with a time to live, and hands out leases
so that of all the processes needing a token, one fetches it while the others wait for it
(:class:`~requests_oauthcc.reuse.SharedTokenSource` does that dance). Backends:
:class:`MemoryTokenCache` (auth objects of one process),
:class:`~requests_oauthcc.file_cache.FileTokenCache` (processes of one host),
:class:`~requests_oauthcc.redis_cache.RedisTokenCache` (many hosts);
:class:`EncryptedTokenCache` wraps any of them to encrypt tokens at rest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from .errors import ConfigurationError, OAuthError
from .redaction import Secret, reveal

__all__ = [
    "KEY_ITERATIONS",
    "MAX_ENTRY_BYTES",
    "CacheEntry",
    "CacheError",
    "CacheKey",
    "CredentialFingerprint",
    "EncryptedTokenCache",
    "Lease",
    "MemoryTokenCache",
    "TokenCache",
    "cache_key",
    "fingerprint",
]

logger = logging.getLogger(__name__)

MAX_ENTRY_BYTES: Final = 1 << 20
"""A stored entry larger than this (1 MiB, like a token response) is an unreadable miss."""

KEY_ITERATIONS: Final = 150_000
"""PBKDF2-HMAC-SHA256 iterations naming a client secret in a cache key (~40 ms, once)."""

_KEY_SALT_LABEL: Final = b"requests-oauthcc cache key v1"


class CacheError(OAuthError):
    """A shared cache could not be used (server down, unreadable storage).

    Never reaches the caller of an API request: the token is then fetched directly.
    """


@dataclass(frozen=True)
class CacheEntry:
    """A cached token: ``payload`` is its serialized (maybe encrypted) record;
    ``fingerprint`` identifies the access token without revealing it."""

    fingerprint: str
    payload: str = field(repr=False)


class Lease(Protocol):
    """The right to fetch the token for one key, until released or expired."""

    def release(self) -> None:
        """Give the lease back (a no-op if it expired and another holder took it)."""
        ...


class TokenCache(Protocol):
    """Storage shared by auth objects, processes or hosts.

    Implementations raise :class:`CacheError` when the storage fails; they never hold a
    token past ``ttl``. ``lease_ttl`` bounds how long a lease lives (so a fetcher that died
    holding one is replaced) and how long others wait for its token.

    Storage is not authority: whatever ``get`` returns is checked like a token response
    before use, and an entry that fails the checks is a (logged) miss. Any exception a
    backend raises ends as a logged direct fetch, never as a failed request.
    """

    lease_ttl: float

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key``, or ``None``."""
        ...

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        """Store ``entry`` for ``ttl`` seconds (``math.inf``: until replaced or deleted)."""
        ...

    def delete(self, key: str, fingerprint: str) -> None:
        """Delete the entry only if it still holds the token with this ``fingerprint``."""
        ...

    def lease(self, key: str) -> Lease | None:
        """Take the fetch lease for ``key`` (at most ``lease_ttl`` s); ``None`` if taken."""
        ...


def check_lease_ttl(lease_ttl: object) -> float:
    """``lease_ttl`` as seconds, or :class:`ConfigurationError` unless positive and finite."""
    if (isinstance(lease_ttl, bool) or not isinstance(lease_ttl, (int, float))
            or not math.isfinite(lease_ttl) or lease_ttl <= 0):
        raise ConfigurationError(
            f"lease_ttl must be a positive number of seconds; got {lease_ttl!r}")
    return float(lease_ttl)


def fingerprint(access_token: str) -> str:
    """A SHA-256 hex digest naming a token without revealing it."""
    return hashlib.sha256(access_token.encode("utf-8")).hexdigest()


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
) -> str:
    """A key naming everything that makes a token different, hashed (it reveals nothing).

    Scope tokens and resources are order-insensitive. ``credential`` is the
    :class:`CredentialFingerprint` of the credential the client authenticates with, so
    that auth objects holding different secrets or keys for the same client never share
    a token (one with a wrong secret gets the server's error, not another's token).
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
      callable such as :class:`~requests_oauthcc.client_auth.SecretFile`):
      :func:`secret_fingerprint` (PBKDF2, ~40 ms). A callable is resolved at every call, so
      the key follows a rotated secret: processes holding the new secret share tokens
      under a new key, those still holding the old one keep theirs. The last value and its
      digest are kept, so the slow hash runs once per distinct secret value.
    - ``private_key`` (``private_key_jwt``, a cryptography private key): SHA-256 of its
      public key (SubjectPublicKeyInfo DER), computed once; a public value needs no slow hash.
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
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._secret = secret
        self._public_key = None if private_key is None else _public_key_digest(private_key)
        self._cert = cert
        self._memo: tuple[Secret, str] | None = None

    def __call__(self) -> str:
        parts = []
        if self._secret is not None:
            parts.append("secret:" + self._secret_digest())
        if self._public_key is not None:
            parts.append("key:" + self._public_key)
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

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_memo": None}

    def __repr__(self) -> str:
        kinds = [name for name, value in (("secret", self._secret),
                                          ("private_key", self._public_key),
                                          ("cert", self._cert)) if value]
        return f"CredentialFingerprint({self._client_id!r}, {'+'.join(kinds) or 'none'})"


def _public_key_digest(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _cert_digest(cert: str | tuple[str, str]) -> str:
    path = cert[0] if isinstance(cert, tuple) else cert
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, TypeError, ValueError):
        return hashlib.sha256(b"path:" + str(path).encode("utf-8", "surrogatepass")).hexdigest()


class _MemoryLease:
    def __init__(self, cache: MemoryTokenCache, key: str, owner: object) -> None:
        self._cache, self._key, self._owner = cache, key, owner

    def release(self) -> None:
        self._cache._release(self._key, self._owner)


class MemoryTokenCache:
    """A cache inside one process, shared by the auth objects given the same instance."""

    def __init__(self, *, lease_ttl: float = 30.0) -> None:
        self.lease_ttl = check_lease_ttl(lease_ttl)
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[CacheEntry, float]] = {}
        self._leases: dict[str, tuple[object, float]] = {}

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[1] <= time.monotonic():
                return None
            return found[0]

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        with self._lock:
            self._entries[key] = (entry, time.monotonic() + ttl)

    def delete(self, key: str, fingerprint: str) -> None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0].fingerprint == fingerprint:
                del self._entries[key]

    def lease(self, key: str) -> Lease | None:
        owner = object()
        now = time.monotonic()
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[1] > now:
                return None
            self._leases[key] = (owner, now + self.lease_ttl)
        return _MemoryLease(self, key, owner)

    def _release(self, key: str, owner: object) -> None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] is owner:
                del self._leases[key]

    def __reduce__(self) -> tuple[Any, ...]:
        # Per process: a pickled memory cache arrives as a new, empty one.
        return (_restore, (MemoryTokenCache, {"lease_ttl": self.lease_ttl}))

    def __deepcopy__(self, memo: dict[int, Any]) -> MemoryTokenCache:
        return self  # a handle to shared storage: copies of an auth object share it

    def __repr__(self) -> str:
        return f"MemoryTokenCache({len(self._entries)} entries)"


def _restore(cls: type[Any], kwargs: dict[str, Any]) -> Any:
    """Rebuild a cache from its constructor arguments (the pickling of every backend)."""
    return cls(**kwargs)


class EncryptedTokenCache:
    """Wraps a cache so that tokens are stored encrypted (Fernet: AES-128-CBC + HMAC).

    ``keys``: one Fernet key (``Fernet.generate_key()``), or several to rotate keys: the
    first encrypts, all decrypt. A cached bearer token is a credential; encrypt it where
    the storage is shared with anyone who should not hold it. Needs the ``[encryption]``
    extra (cryptography).

    Each entry is bound to its cache key: the key is encrypted with the payload and
    checked after decryption, so an entry copied to another key by someone who can write
    the store but holds no encryption key is a miss, never a token sent to the other key's
    API. An entry that does not decrypt, or was stored under another key, is a logged miss.
    Pickles with its keys and its inner cache.
    """

    def __init__(self, inner: TokenCache, keys: str | bytes | Sequence[str | bytes]) -> None:
        try:
            from cryptography.fernet import Fernet, MultiFernet
        except ImportError as exc:  # pragma: no cover - exercised without the extra
            raise ConfigurationError(
                "EncryptedTokenCache needs cryptography: pip install "
                "'requests-oauthcc[encryption]'"
            ) from exc
        key_list = [keys] if isinstance(keys, (str, bytes)) else list(keys)
        if not key_list:
            raise ConfigurationError("EncryptedTokenCache needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in key_list])
        except (ValueError, TypeError):
            raise ConfigurationError(
                "EncryptedTokenCache keys must be Fernet keys (32 url-safe base64-encoded "
                "bytes), e.g. from cryptography.fernet.Fernet.generate_key()"
            ) from None
        self._keys = [Secret(k if isinstance(k, str) else k.decode("ascii")) for k in key_list]
        self._inner = inner
        self.lease_ttl = inner.lease_ttl

    def get(self, key: str) -> CacheEntry | None:
        from cryptography.fernet import InvalidToken

        entry = self._inner.get(key)
        if entry is None:
            return None
        try:
            plain = self._fernet.decrypt(entry.payload.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError, TypeError, AttributeError):
            logger.warning("token cache entry for key %s does not decrypt with these keys: "
                           "treated as a miss", key)
            return None
        bound_key, sep, payload = plain.partition("\n")
        if not sep or bound_key != key:
            logger.warning("token cache entry for key %s was stored under another key (copied "
                           "there?): treated as a miss", key)
            return None
        return CacheEntry(entry.fingerprint, payload)

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        bound = f"{key}\n{entry.payload}"
        sealed = self._fernet.encrypt(bound.encode("utf-8")).decode("ascii")
        self._inner.set(key, CacheEntry(entry.fingerprint, sealed), ttl)

    def delete(self, key: str, fingerprint: str) -> None:
        self._inner.delete(key, fingerprint)

    def lease(self, key: str) -> Lease | None:
        return self._inner.lease(key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (EncryptedTokenCache, {"inner": self._inner,
                                                  "keys": [k.reveal() for k in self._keys]}))

    def __deepcopy__(self, memo: dict[int, Any]) -> EncryptedTokenCache:
        return self

    def __repr__(self) -> str:
        return f"EncryptedTokenCache({self._inner!r})"


def encode_record(record: Mapping[str, Any]) -> str:
    """A token record as the JSON text stored in a cache entry."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True)
