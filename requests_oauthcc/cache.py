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
import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from .errors import ConfigurationError, OAuthError
from .redaction import Secret

__all__ = [
    "MAX_ENTRY_BYTES",
    "CacheEntry",
    "CacheError",
    "EncryptedTokenCache",
    "Lease",
    "MemoryTokenCache",
    "TokenCache",
    "fingerprint",
]

logger = logging.getLogger(__name__)

MAX_ENTRY_BYTES: Final = 1 << 20
"""A stored entry larger than this (1 MiB, like a token response) is an unreadable miss."""

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
