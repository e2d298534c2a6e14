"""A token cache in Redis, shared by processes on many hosts (the ``[redis]`` extra)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from .cache import CacheEntry, CacheError, Lease
from .errors import ConfigurationError

__all__ = ["RedisTokenCache"]

_T = TypeVar("_T")

# Delete KEYS[1] only if it still starts with ARGV[1] (a token fingerprint or lease owner).
_COMPARE_AND_DELETE = """
if string.sub(redis.call('GET', KEYS[1]) or '', 1, string.len(ARGV[1])) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class _RedisLease:
    def __init__(self, cache: RedisTokenCache, key: str, owner: str) -> None:
        self._cache, self._key, self._owner = cache, key, owner

    def release(self) -> None:
        self._cache._run(lambda: self._cache._delete_if(keys=[self._key], args=[self._owner]))


class RedisTokenCache:
    """Tokens in Redis: one value per cache key with a TTL equal to the token's remaining life.

    ``redis``: a ``redis.Redis`` client or a ``redis://`` URL (a client is then made with
    ``socket_timeout`` for both connecting and reading, so an unreachable Redis costs
    little before the token is fetched directly). ``namespace`` prefixes every key.

    The lease is ``SET lease NX PX lease_ttl`` holding a random owner string, released by
    a Lua compare-and-delete, so a lease that expired and was taken over is never freed by
    its old holder. A rejected token is deleted the same way, only if still stored.

    Redis Cluster: the token and lease keys of one cache key share a hash tag
    (``{namespace}:{<key>}:token`` and ``...:lease``), so they live in one slot and the
    Lua scripts touch a single slot.
    """

    def __init__(
        self,
        redis: Any,
        *,
        namespace: str = "oauthcc",
        lease_ttl: float = 30.0,
        socket_timeout: float = 1.0,
    ) -> None:
        try:
            import redis as redis_module
        except ImportError as exc:
            raise ConfigurationError(
                "RedisTokenCache needs the redis package: pip install 'requests-oauthcc[redis]'"
            ) from exc
        self._errors = redis_module.RedisError
        if isinstance(redis, str):
            redis = redis_module.Redis.from_url(
                redis, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        self._client = redis
        self.namespace = namespace
        self.lease_ttl = lease_ttl
        self._delete_if = redis.register_script(_COMPARE_AND_DELETE)

    def _key(self, key: str, kind: str) -> str:
        return f"{self.namespace}:{{{key}}}:{kind}"

    def _run(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except self._errors as exc:
            raise CacheError(f"redis: {type(exc).__name__}: {exc}") from exc

    def get(self, key: str) -> CacheEntry | None:
        value = self._run(lambda: self._client.get(self._key(key, "token")))
        if value is None:
            return None
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        fingerprint, sep, payload = text.partition("\n")
        return CacheEntry(fingerprint, payload) if sep else None

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        value = f"{entry.fingerprint}\n{entry.payload}"
        px = None if math.isinf(ttl) else max(1, int(ttl * 1000))
        self._run(lambda: self._client.set(self._key(key, "token"), value, px=px))

    def delete(self, key: str, fingerprint: str) -> None:
        self._run(lambda: self._delete_if(keys=[self._key(key, "token")],
                                          args=[fingerprint + "\n"]))

    def lease(self, key: str) -> Lease | None:
        owner = secrets.token_hex(16)
        lease_key = self._key(key, "lease")
        taken = self._run(lambda: self._client.set(
            lease_key, owner, nx=True, px=max(1, int(self.lease_ttl * 1000))))
        return _RedisLease(self, lease_key, owner) if taken else None

    def __repr__(self) -> str:
        return f"RedisTokenCache(namespace={self.namespace!r})"
