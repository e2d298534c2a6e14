"""A token cache in Redis, shared by processes on many hosts (the ``[redis]`` extra)."""

from __future__ import annotations

import logging
import math
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from . import _redis_clients
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

# Take lease KEYS[1] for owner ARGV[1] for ARGV[2] ms, unless someone else holds it. Taking
# it again as its owner succeeds: a retried call whose first reply was lost gets its lease.
_TAKE_LEASE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return 1 end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


FAILOVER_SECONDS = 4.0
"""How long (seconds) an operation through Sentinel is tried again while the master is
unreachable, for the sentinels to promote a replica; less than a shared-cache operation's
whole bound (:data:`~requests_oauthcc.shared.CACHE_OPERATION_SECONDS`)."""


class _RedisLease:
    def __init__(self, cache: RedisTokenCache, key: str, owner: str) -> None:
        self._cache, self._key, self._owner = cache, key, owner

    def release(self) -> None:
        self._cache._run(lambda: self._cache._delete_if(keys=[self._key], args=[self._owner]))


class RedisTokenCache:
    """Tokens in Redis: one value per cache key with a TTL equal to the token's remaining life.

    ``redis``, one of:

    - a URL: ``redis://``, ``rediss://`` or ``unix://`` (one server, read by
      ``redis.Redis.from_url``); ``redis+cluster://host:port`` (a Redis Cluster: any one
      node, the others are discovered; the rest of the URL is read by
      ``redis.cluster.RedisCluster.from_url``); or
      ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``
      (the master that the sentinels at those addresses, port 26379 by default, know as
      ``service_name``; credentials, ``db`` and query options apply to the master's
      connections). ``rediss+cluster://`` and ``rediss+sentinel://`` use TLS. The cache
      makes the client with ``socket_timeout`` for both connecting and reading (unless the
      URL's query sets them), so an unreachable Redis costs little before the token is
      fetched directly;
    - a client: ``redis.Redis`` (a master client from ``Sentinel.master_for`` included)
      or ``redis.cluster.RedisCluster``, used as configured;
    - a ``redis.sentinel.Sentinel`` with ``service_name``: the cache uses
      ``sentinel.master_for(service_name)`` (with ``socket_timeout`` unless the
      ``Sentinel`` sets its own).

    ``namespace`` prefixes every key. ``lease_ttl``: seconds (positive). Raises
    :class:`~requests_oauthcc.errors.ConfigurationError` without the redis package, for
    ``service_name`` given with anything but a ``Sentinel`` (or missing with one), and for
    a Sentinel replica client (the cache writes); ``ValueError`` for a malformed URL.

    The lease is a key set (if absent) to a random owner string with a PX of ``lease_ttl``,
    by a Lua script that also answers "taken" to its owner (a call retried after its reply
    was lost finds its own lease, not a stranger's), released by a Lua compare-and-delete,
    so a lease that expired and was taken over is never freed by its old holder. A
    rejected token is deleted the same way, only if still stored. A lease key without
    expiry, or expiring beyond ten times ``lease_ttl``, was not made by this class: it is
    bypassed (logged, the token fetched directly) instead of waited for.

    Whatever is stored is read as untrusted: a value that is not UTF-8, larger than
    :data:`~requests_oauthcc.cache.MAX_ENTRY_BYTES` (only that much is read, with
    ``GETRANGE``), of another Redis type or of another shape is a logged miss.

    Redis Cluster: the token and lease keys of one cache key share a hash tag
    (``{namespace}:{<key>}:token`` and ``...:lease``), so they live in one slot and the
    Lua scripts touch a single slot; redis-py's ``RedisCluster`` follows ``MOVED`` and
    ``ASK`` redirections itself.

    Sentinel: reads, writes and scripts all go to the master. While it is unreachable
    (killed, or demoted: redis-py then asks the sentinels again), an operation is tried
    again for up to :data:`FAILOVER_SECONDS`, so that a failover that fast costs callers
    a pause, not a token request per process; a longer one ends in the usual fallback
    (logged, the token fetched directly). A token written to the old master but not yet
    replicated is lost with it: one more token request.

    Pickling: a cache made from a URL is rebuilt from the URL; one given a client or a
    ``Sentinel`` is rebuilt from the connection pool's settings (``connection_kwargs``,
    and the sentinels' addresses and settings), and raises ``TypeError`` when there are
    none (a ``RedisCluster`` client) or they cannot be pickled: pass a URL then.
    """

    def __init__(
        self,
        redis: Any,
        *,
        service_name: str | None = None,
        namespace: str = "oauthcc",
        lease_ttl: float = 30.0,
        socket_timeout: float = 1.0,
    ) -> None:
        try:
            import redis as redis_module
            from redis.sentinel import Sentinel
        except ImportError as exc:
            raise ConfigurationError(
                "RedisTokenCache needs the redis package: pip install 'requests-oauthcc[redis]'"
            ) from exc
        self._errors = redis_module.RedisError
        self._wrong_type = redis_module.ResponseError
        self._unreachable = (redis_module.ConnectionError, redis_module.TimeoutError)
        self._dropped = redis_module.ConnectionError  # sent again; a timeout (costly) is not
        if (service_name is not None) != isinstance(redis, Sentinel):
            raise ConfigurationError(
                "RedisTokenCache takes service_name with a redis.sentinel.Sentinel, and "
                "only then")
        self._url = redis if isinstance(redis, str) else None
        if isinstance(redis, str):
            redis = _redis_clients.client_from_url(redis, socket_timeout)
            _close_when_collected(self, redis)
        elif service_name is not None:
            redis = _redis_clients.sentinel_master(redis, service_name, socket_timeout)
            _close_when_collected(self, redis)
        self._kind = _redis_clients.kind_of(redis)
        self._client = redis
        self.namespace = namespace
        self.lease_ttl = check_lease_ttl(lease_ttl)
        self._socket_timeout = socket_timeout
        self._delete_if = redis.register_script(_COMPARE_AND_DELETE)
        self._take_lease = redis.register_script(_TAKE_LEASE)

    def _key(self, key: str, kind: str) -> str:
        return f"{self.namespace}:{{{key}}}:{kind}"

    def _run(self, call: Callable[[], _T]) -> _T:
        """``call()``, an idempotent operation (every one of this class is, the lease
        script included): sent once more at once after its connection dropped (its reply
        may be all that was lost), and through Sentinel for up to :data:`FAILOVER_SECONDS`;
        a Redis error becomes a :class:`~requests_oauthcc.cache.CacheError`."""
        waited_until = None
        pause = 0.05
        dropped_once = False
        while True:
            try:
                return call()
            except self._unreachable as exc:
                if (self._kind != "sentinel" and not dropped_once
                        and isinstance(exc, self._dropped)):
                    # redis-py does not send it again (a client from a URL has no
                    # retries): a lease taken by a command whose reply was lost would
                    # be held, by nobody, for lease_ttl, every process waiting for it.
                    dropped_once = True
                    continue
                # Through Sentinel, an unreachable master is most likely being replaced.
                now = time.monotonic()
                waited_until = waited_until or now + FAILOVER_SECONDS
                if self._kind != "sentinel" or now + pause > waited_until:
                    raise self._failed(exc) from exc
                logger.debug("redis master unreachable (%s); trying again in %.2fs",
                             type(exc).__name__, pause)
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
            except self._errors as exc:
                raise self._failed(exc) from exc

    @staticmethod
    def _failed(exc: Exception) -> CacheError:
        return CacheError(f"redis: {type(exc).__name__}: {server_text(str(exc))}")

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
        # Not SET NX: a retry after a lost reply would find its own lease and wait for it.
        taken = self._run(lambda: self._take_lease(keys=[lease_key], args=[owner, ttl_ms]))
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
        return (_rebuild, (None, _redis_clients.rebuild_recipe(self._client, self._kind),
                           options))

    def __deepcopy__(self, memo: dict[int, Any]) -> RedisTokenCache:
        return self

    def __repr__(self) -> str:
        return f"RedisTokenCache(namespace={self.namespace!r})"


def _rebuild(
    url: str | None, recipe: tuple[Any, ...] | None, options: dict[str, Any]
) -> RedisTokenCache:
    """A RedisTokenCache rebuilt in another process from a URL or a client's recipe."""
    if url is not None:
        return RedisTokenCache(url, **options)
    assert recipe is not None
    cache = RedisTokenCache(_redis_clients.rebuild(recipe), **options)
    _close_when_collected(cache, cache._client)
    return cache


def _close_when_collected(cache: RedisTokenCache, client: Any) -> None:
    """A client the cache made itself is closed with it, as urllib3 closes a pool it drops:
    its connections are not left for the garbage collector (a ``ResourceWarning`` each)."""
    weakref.finalize(cache, client.close)
