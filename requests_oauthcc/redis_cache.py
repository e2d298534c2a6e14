"""A token cache in Redis, shared by processes on many hosts (the ``[redis]`` extra)."""

from __future__ import annotations

import logging
import math
import pickle
import secrets
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from .cache import MAX_ENTRY_BYTES, CacheEntry, CacheError, Lease, check_lease_ttl
from .errors import ConfigurationError
from .redaction import server_text

__all__ = ["RedisTokenCache"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Delete KEYS[1] only if it still starts with ARGV[1] (a token fingerprint or lease owner).
_COMPARE_AND_DELETE = """
if string.sub(redis.call('GET', KEYS[1]) or '', 1, string.len(ARGV[1])) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


_POOL_STATE = frozenset({"himport_registry", "maint_notifications_pool_handler"})
"""Entries of redis-py's ``connection_kwargs`` that a new pool makes afresh."""


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
    ``lease_ttl``: seconds (positive).

    The lease is ``SET lease NX PX lease_ttl`` holding a random owner string, released by
    a Lua compare-and-delete, so a lease that expired and was taken over is never freed by
    its old holder. A rejected token is deleted the same way, only if still stored. A lease
    key without expiry, or expiring beyond ten times ``lease_ttl``, was not made by this
    class: it is bypassed (logged, the token fetched directly) instead of waited for.

    Whatever is stored is read as untrusted: a value that is not UTF-8, larger than
    :data:`~requests_oauthcc.cache.MAX_ENTRY_BYTES` (only that much is read, with
    ``GETRANGE``), of another Redis type or of another shape is a logged miss.

    Redis Cluster: the token and lease keys of one cache key share a hash tag
    (``{namespace}:{<key>}:token`` and ``...:lease``), so they live in one slot and the
    Lua scripts touch a single slot.

    Pickling: a cache made from a URL is rebuilt from the URL; one given a client is
    rebuilt from the client's connection pool settings (``connection_kwargs``), and
    raises ``TypeError`` when there are none or they cannot be pickled (pass a URL then).
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
        self._wrong_type = redis_module.ResponseError
        self._url = redis if isinstance(redis, str) else None
        if isinstance(redis, str):
            redis = redis_module.Redis.from_url(
                redis, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
            _close_when_collected(self, redis)
        self._client = redis
        self.namespace = namespace
        self.lease_ttl = check_lease_ttl(lease_ttl)
        self._socket_timeout = socket_timeout
        self._delete_if = redis.register_script(_COMPARE_AND_DELETE)

    def _key(self, key: str, kind: str) -> str:
        return f"{self.namespace}:{{{key}}}:{kind}"

    def _run(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except self._errors as exc:
            raise CacheError(f"redis: {type(exc).__name__}: {server_text(str(exc))}") from exc

    def get(self, key: str) -> CacheEntry | None:
        name = self._key(key, "token")
        try:
            value = self._run(lambda: self._client.getrange(name, 0, MAX_ENTRY_BYTES))
        except CacheError as exc:
            if isinstance(exc.__cause__, self._wrong_type) and "WRONGTYPE" in str(exc):
                return self._miss(name, "is not a string")
            raise
        if not value:
            return None
        if len(value) > MAX_ENTRY_BYTES:
            return self._miss(name, f"is larger than {MAX_ENTRY_BYTES} bytes")
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            return self._miss(name, "is not UTF-8")
        fingerprint, sep, payload = text.partition("\n")
        if not sep:
            return self._miss(name, "has no fingerprint line (corrupt)")
        return CacheEntry(fingerprint, payload)

    def _miss(self, name: str, problem: str) -> CacheEntry | None:
        logger.warning("redis token cache value %s %s: treated as a miss", name, problem)
        return None

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
        ttl_ms = max(1, int(self.lease_ttl * 1000))
        taken = self._run(lambda: self._client.set(lease_key, owner, nx=True, px=ttl_ms))
        if taken:
            return _RedisLease(self, lease_key, owner)
        remaining = self._run(lambda: self._client.pttl(lease_key))
        if isinstance(remaining, int) and (remaining == -1 or remaining > ttl_ms + 1000):
            # Never made by a RedisTokenCache with this lease_ttl (its leases live at most
            # that long): waiting for it would delay every refresh.
            raise CacheError(f"lease {lease_key} has no expiry or one beyond lease_ttl "
                             "(planted, or another lease_ttl in the fleet?)")
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        options = {"namespace": self.namespace, "lease_ttl": self.lease_ttl,
                   "socket_timeout": self._socket_timeout}
        if self._url is not None:
            return (_rebuild, (self._url, None, options))
        pool = getattr(self._client, "connection_pool", None)
        settings = getattr(pool, "connection_kwargs", None)
        connection_class = getattr(pool, "connection_class", None)
        if isinstance(settings, dict):  # leave out the pool's own state and sentinels
            settings = {name: value for name, value in settings.items()
                        if name not in _POOL_STATE and type(value) is not object}
        if not isinstance(settings, dict) or connection_class is None:
            raise TypeError(
                f"RedisTokenCache cannot be pickled: its {type(self._client).__name__} client "
                "has no connection pool settings to rebuild it from; pass a redis:// URL "
                "instead of a client"
            )
        try:
            pickle.dumps((connection_class, settings))
        except Exception as exc:
            raise TypeError(
                "RedisTokenCache cannot be pickled: its client's connection settings cannot "
                f"be ({type(exc).__name__}); pass a redis:// URL instead of a client"
            ) from None
        return (_rebuild, (None, (connection_class, settings), options))

    def __deepcopy__(self, memo: dict[int, Any]) -> RedisTokenCache:
        return self

    def __repr__(self) -> str:
        return f"RedisTokenCache(namespace={self.namespace!r})"


def _rebuild(
    url: str | None, connection: tuple[Any, dict[str, Any]] | None, options: dict[str, Any]
) -> RedisTokenCache:
    """A RedisTokenCache rebuilt in another process from a URL or pool settings."""
    if url is not None:
        return RedisTokenCache(url, **options)
    import redis

    assert connection is not None
    connection_class, settings = connection
    pool = redis.ConnectionPool(connection_class=connection_class, **settings)
    cache = RedisTokenCache(redis.Redis(connection_pool=pool), **options)
    _close_when_collected(cache, cache._client)
    return cache


def _close_when_collected(cache: RedisTokenCache, client: Any) -> None:
    """A client the cache made itself is closed with it, as urllib3 closes a pool it drops:
    its connections are not left for the garbage collector (a ``ResourceWarning`` each)."""
    weakref.finalize(cache, client.close)
