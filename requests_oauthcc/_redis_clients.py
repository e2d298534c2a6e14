"""The redis-py client a :class:`~requests_oauthcc.redis_cache.RedisTokenCache` talks
through: made from a URL (a single server, a Redis Cluster or a Sentinel-managed master)
or from a ``redis.sentinel.Sentinel``; and, for pickling, how to make it again."""

from __future__ import annotations

import pickle
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ConfigurationError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes of a Redis Cluster, and the scheme redis-py reads the rest with."""

SENTINEL_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
"""URL schemes of a master found through Sentinel, and the scheme of its connections."""

SENTINEL_PORT = 26379

_POOL_STATE = frozenset({"himport_registry", "maint_notifications_pool_handler",
                         "connection_pool"})
"""Entries of redis-py's ``connection_kwargs`` that a new pool makes afresh (the last one
is a Sentinel pool's proxy to itself)."""


def client_from_url(url: str, timeout: float) -> Any:
    """:func:`_client_from_url`, whose ``ValueError`` for a malformed URL holding
    credentials (``user:pass@``) does not quote it: urllib's and redis-py's messages quote
    the text they could not read (``Port could not be cast to integer value as 'pa'``),
    which, with a password holding an unencoded ``/``, ``#`` or ``?``, is the password."""
    try:
        return _client_from_url(url, timeout)
    except ValueError as exc:
        if "@" not in url:
            raise
        raise ValueError(
            f"malformed Redis URL ({type(exc).__name__}; the message is not shown: the URL "
            "holds credentials). Percent-encode / # ? @ : in the user name and password"
        ) from None


def _client_from_url(url: str, timeout: float) -> Any:
    """A client for ``url``: ``redis://``, ``rediss://`` or ``unix://`` (one server,
    ``redis.Redis.from_url``), ``redis+cluster://`` or ``rediss+cluster://`` (one node of
    a cluster, the rest discovered: ``redis.cluster.RedisCluster.from_url`` with the
    scheme's ``+cluster`` removed), ``redis+sentinel://`` or ``rediss+sentinel://`` (see
    :func:`sentinel_master_from_url`). ``timeout``: seconds, for connecting and for each
    read, unless the URL's query sets them. Raises ``ValueError`` for a malformed URL.
    """
    import redis

    defaults = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in CLUSTER_SCHEMES:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}", **defaults)
    if sep and scheme.lower() in SENTINEL_SCHEMES:
        return sentinel_master_from_url(url, timeout)
    return redis.Redis.from_url(url, **defaults)


def sentinel_master_from_url(url: str, timeout: float) -> Any:
    """The master client of
    ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db][?query]``.

    Each ``host:port`` is a sentinel (port 26379 by default); ``service`` is the master's
    name in their ``sentinel monitor`` line. The credentials, ``db`` and query options
    (read by redis-py's ``parse_url``) apply to the master's connections; sentinels are
    reached with ``timeout`` only, as redis-py's ``Sentinel`` does by default.
    ``rediss+sentinel``: TLS to the master and to the sentinels.
    """
    from redis import connection

    parse_url: Any = connection.parse_url  # untyped in redis-py
    sentinel_class: Any = _sentinel_class()

    scheme, _, rest = url.partition("://")
    base = SENTINEL_SCHEMES[scheme.lower()]
    parts = urlsplit(f"{base}://{rest}")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    path = [unquote(part) for part in parts.path.split("/") if part]
    if not hosts or not 1 <= len(path) <= 2:
        raise ValueError("a Sentinel URL reads redis+sentinel://host:port[,host:port...]"
                         "/service_name[/db]")
    sentinels = []
    for host in hosts.split(","):
        address = urlsplit(f"//{host}")
        if not address.hostname:
            raise ValueError("a Sentinel URL names each sentinel as host[:port]")
        sentinels.append((address.hostname, address.port or SENTINEL_PORT))
    db = f"/{path[1]}" if len(path) == 2 else ""
    query = f"?{parts.query}" if parts.query else ""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    options.update(parse_url(f"{base}://{userinfo}{at}{sentinels[0][0]}{db}{query}"))
    options.pop("host", None)
    options.pop("port", None)
    tls = options.pop("connection_class", None) is not None  # rediss: SSLConnection
    reach = {"socket_timeout": options["socket_timeout"],
             "socket_connect_timeout": options["socket_connect_timeout"]}
    if tls:
        reach["ssl"] = options["ssl"] = True
    return sentinel_class(sentinels, sentinel_kwargs=reach).master_for(path[0], **options)


def _sentinel_class() -> Any:
    """``redis.sentinel.Sentinel`` (untyped in redis-py)."""
    from redis import sentinel

    return sentinel.Sentinel


def sentinel_master(sentinel: Any, service_name: str, timeout: float) -> Any:
    """``sentinel.master_for(service_name)``, with ``timeout`` (seconds) for connecting
    and reading unless the ``Sentinel`` was given its own."""
    defaults = {name: timeout for name in ("socket_timeout", "socket_connect_timeout")
                if name not in sentinel.connection_kwargs}
    return sentinel.master_for(service_name, **defaults)


def kind_of(client: Any) -> str:
    """``"cluster"``, ``"sentinel"`` (a master found through Sentinel) or ``"redis"``.

    Raises :class:`ConfigurationError` for a Sentinel-managed replica client: it cannot
    write, and the cache writes tokens and leases."""
    from redis.cluster import RedisCluster
    from redis.sentinel import SentinelConnectionPool

    if isinstance(client, RedisCluster):
        return "cluster"
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        if not pool.is_master:
            raise ConfigurationError(
                "RedisTokenCache writes tokens and leases: give it the master client "
                "(sentinel.master_for(service)), not a replica's")
        return "sentinel"
    return "redis"


def rebuild_recipe(client: Any, kind: str) -> tuple[Any, ...]:
    """What :func:`rebuild` needs to make ``client`` again in another process, all of it
    picklable; ``TypeError`` (naming the URL form to use instead) when there is none."""
    scheme = {"cluster": "redis+cluster://", "sentinel": "redis+sentinel://"}.get(
        kind, "redis://")
    pool = getattr(client, "connection_pool", None)
    settings = getattr(pool, "connection_kwargs", None)
    connection_class = getattr(pool, "connection_class", None)
    if kind == "cluster" or not isinstance(settings, dict) or connection_class is None:
        raise TypeError(
            f"RedisTokenCache cannot be pickled: its {type(client).__name__} client has no "
            f"connection pool settings to rebuild it from; pass a {scheme} URL instead of "
            "a client")
    settings = {name: value for name, value in settings.items()
                if name not in _POOL_STATE and type(value) is not object}
    recipe: tuple[Any, ...] = ("redis", connection_class, settings)
    if kind == "sentinel":
        assert pool is not None
        manager = pool.sentinel_manager
        sentinels = [(node.connection_pool.connection_kwargs["host"],
                      node.connection_pool.connection_kwargs["port"])
                     for node in manager.sentinels]
        recipe = ("sentinel", connection_class, settings, pool.service_name, sentinels,
                  manager.sentinel_kwargs, manager.min_other_sentinels,
                  manager._force_master_ip)
    try:
        pickle.dumps(recipe)
    except Exception as exc:
        raise TypeError(
            "RedisTokenCache cannot be pickled: its client's connection settings cannot "
            f"be ({type(exc).__name__}); pass a {scheme} URL instead of a client"
        ) from None
    return recipe


def rebuild(recipe: tuple[Any, ...]) -> Any:
    """The client a :func:`rebuild_recipe` describes."""
    import redis

    if recipe[0] == "sentinel":
        _, connection_class, settings, service, sentinels, reach, others, force_ip = recipe
        manager = _sentinel_class()(sentinels, min_other_sentinels=others, sentinel_kwargs=reach,
                           force_master_ip=force_ip)
        return manager.master_for(service, connection_class=connection_class, **settings)
    _, connection_class, settings = recipe
    pool = redis.ConnectionPool(connection_class=connection_class, **settings)
    return redis.Redis(connection_pool=pool)
