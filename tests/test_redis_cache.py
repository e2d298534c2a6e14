"""RedisTokenCache on a real Redis Cluster and through real sentinels: URL and client
forms, one hash slot per cache key, pickling, and a fleet of 8 processes x 4 threads that
makes one token request per token lifetime, through a master's death included."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis
from redis import sentinel as redis_sentinel
from redis.cluster import RedisCluster as ClusterClient

from requests_oauthcc import ConfigurationError, RedisTokenCache
from requests_oauthcc.cache import CacheEntry
from requests_oauthcc.testing import OAuthTestServer

from .conftest import FORK_WARNING
from .redis_topologies import SERVICE, RedisCluster, RedisSentinels
from .workers import hammer

Sentinel: Any = redis_sentinel.Sentinel  # untyped in redis-py

LIFETIME = 2.0
LEEWAY = 0.25


def run_fleet(
    server: OAuthTestServer, url: str, seconds: float,
    midway: tuple[float, Any] | None = None,
) -> tuple[Counter[str], float]:
    """8 forked processes x 4 threads calling the API through a cache at ``url`` for
    ``seconds``, started together; ``midway``: (delay, action) run by this process that
    long after the start. Their status counts, and the seconds from start to the end."""
    ctx: Any = multiprocessing.get_context("fork")
    processes = 8
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=hammer, args=(server.token_url, server.resource_url,
                                         ("redis", url), barrier, results, 4, seconds,
                                         LEEWAY))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    barrier.wait(30)
    started = time.monotonic()
    if midway is not None:
        delay, action = midway
        time.sleep(delay)
        action()
    total: Counter[str] = Counter()
    for _ in workers:
        _, counts = results.get(timeout=60)
        total.update(counts)
    elapsed = time.monotonic() - started
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    return total, elapsed


def at_most(elapsed: float) -> int:
    """Token requests allowed over ``elapsed`` seconds: one per token lifetime begun, plus
    the first."""
    return math.ceil(elapsed / LIFETIME) + 1


# -- Redis Cluster --------------------------------------------------------------------------


def test_cluster_keeps_each_cache_keys_token_and_lease_in_one_slot(
    redis_cluster: RedisCluster,
) -> None:
    """On a real three-master cluster, CLUSTER KEYSLOT puts the token and lease keys of a
    cache key in one slot (the cache keys themselves spread over all three masters), and
    lease, compare-and-delete and expiry work on every master."""
    cache = RedisTokenCache(redis_cluster.url, namespace="slots", lease_ttl=2)
    client: Any = ClusterClient.from_url(f"redis://127.0.0.1:{redis_cluster.ports[0]}")
    masters = set()
    for index in range(12):
        key = f"cache-key-{index}"
        token_slot = client.cluster_keyslot(cache._key(key, "token"))
        assert client.cluster_keyslot(cache._key(key, "lease")) == token_slot
        masters.add(client.get_node_from_key(cache._key(key, "token")).port)

        lease = cache.lease(key)
        assert lease is not None
        assert cache.lease(key) is None  # held
        lease.release()
        again = cache.lease(key)  # released by the compare-and-delete script
        assert again is not None
        lease.release()  # the old holder's release frees nothing now
        assert cache.lease(key) is None
        again.release()

        cache.set(key, CacheEntry("fp-a", "payload"), 60)
        cache.delete(key, "fp-b")  # another token: kept
        assert cache.get(key) == CacheEntry("fp-a", "payload")
        cache.delete(key, "fp-a")
        assert cache.get(key) is None
    assert masters == set(redis_cluster.ports)
    client.close()


def test_cluster_cache_pickles_from_a_url_not_from_a_client(
    redis_cluster: RedisCluster,
) -> None:
    """A cluster cache made from its URL pickles (rebuilt from the URL, same entries); one
    given a RedisCluster client raises TypeError naming the URL form to use."""
    by_url = RedisTokenCache(redis_cluster.url, namespace="pickled")
    by_url.set("k", CacheEntry("fp", "payload"), 60)
    assert pickle.loads(pickle.dumps(by_url)).get("k") == CacheEntry("fp", "payload")
    client = ClusterClient(host="127.0.0.1", port=redis_cluster.ports[1])
    by_client = RedisTokenCache(client, namespace="pickled")
    assert by_client.get("k") == CacheEntry("fp", "payload")
    with pytest.raises(TypeError, match=r"pass a redis\+cluster:// URL"):
        pickle.dumps(by_client)
    client.close()


@pytest.mark.filterwarnings(FORK_WARNING)
def test_fleet_on_a_cluster_makes_one_token_request_per_lifetime(
    server: OAuthTestServer, redis_cluster: RedisCluster,
) -> None:
    """8 processes x 4 threads share 2 s tokens through the cluster for 6 s: at most one
    token request per lifetime plus the first, and every API call succeeds."""
    server.token_lifetime = LIFETIME
    counts, elapsed = run_fleet(server, redis_cluster.url, seconds=6.0)
    assert set(counts) == {"200"}, counts
    assert server.token_requests <= at_most(elapsed), (server.token_requests, elapsed)
    print(f"{server.token_requests} token requests in {elapsed:.2f}s, "
          f"{sum(counts.values())} API calls")


# -- Sentinel -------------------------------------------------------------------------------


def test_sentinel_url_and_object_forms_use_the_master_and_pickle(
    redis_sentinels: RedisSentinels,
) -> None:
    """The redis+sentinel:// URL, a Sentinel with service_name, and a master_for client
    all write to the master the sentinels name (the replica receives it), and pickle:
    the copy reads the same entries."""
    sentinel: Any = Sentinel([("127.0.0.1", port) for port in redis_sentinels.sentinel_ports],
                        socket_timeout=1)
    forms = [RedisTokenCache(redis_sentinels.url, namespace="forms"),
             RedisTokenCache(sentinel, service_name=SERVICE, namespace="forms"),
             RedisTokenCache(sentinel.master_for(SERVICE), namespace="forms")]
    replica = redis.Redis(port=redis_sentinels.replica_port)
    for index, cache in enumerate(forms):
        cache.set(f"k{index}", CacheEntry(f"fp{index}", "payload"), 60)
        copy = pickle.loads(pickle.dumps(cache))
        for other in range(index + 1):
            assert copy.get(f"k{other}") == CacheEntry(f"fp{other}", "payload")
    deadline = time.monotonic() + 5
    while len(replica.keys("forms:*")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(replica.keys("forms:*")) == 3
    replica.close()


def test_sentinel_misuse_is_refused() -> None:
    """service_name without a Sentinel, a Sentinel without one, a replica client (the
    cache writes) and a Sentinel URL without a service name are refused at construction."""
    sentinel: Any = Sentinel([("127.0.0.1", 1)])
    with pytest.raises(ConfigurationError, match="service_name"):
        RedisTokenCache("redis://127.0.0.1:1/0", service_name=SERVICE)
    with pytest.raises(ConfigurationError, match="service_name"):
        RedisTokenCache(sentinel)
    with pytest.raises(ConfigurationError, match="master"):
        RedisTokenCache(sentinel.slave_for(SERVICE))
    with pytest.raises(ValueError, match="service_name"):
        RedisTokenCache("redis+sentinel://127.0.0.1:1")


@pytest.mark.filterwarnings(FORK_WARNING)
def test_fleet_through_sentinel_survives_the_masters_death(
    server: OAuthTestServer, redis_sentinels: RedisSentinels,
) -> None:
    """8 processes x 4 threads share 2 s tokens through Sentinel for 7 s; the master is
    SIGKILLed 2.5 s in and the sentinels promote the replica (about 3 s of no master,
    overlapping a refresh): every API call succeeds, and the fleet makes at most one token
    request per lifetime plus one for the failover."""
    server.token_lifetime = LIFETIME
    failover: list[float] = []

    def promoted(killed: float) -> None:
        """Record how long the sentinels took to name the replica master."""
        while time.monotonic() < killed + 10:
            try:
                if redis_sentinels.master_address()[1] == redis_sentinels.replica_port:
                    failover.append(time.monotonic() - killed)
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)

    def kill() -> None:
        redis_sentinels.kill_master()
        watcher.start()

    killed_at = time.monotonic
    watcher = threading.Thread(target=lambda: promoted(killed_at()))
    counts, elapsed = run_fleet(server, redis_sentinels.url, seconds=7.0,
                                midway=(2.5, kill))
    watcher.join(15)
    assert failover, "the sentinels did not promote the replica"
    assert set(counts) == {"200"}, counts
    assert server.token_requests <= at_most(elapsed) + 1, (server.token_requests, elapsed)
    print(f"failover {failover[0]:.2f}s, {server.token_requests} token requests in "
          f"{elapsed:.2f}s, {sum(counts.values())} API calls")


# -- A lost reply -----------------------------------------------------------------------


class ReplyDropper:
    """A TCP proxy on 127.0.0.1 to a redis-server that relays everything, except that the
    first reply ``:1`` to a command holding ``marker`` is never relayed: the proxy hangs
    up instead, after Redis has run the command (a reply lost on the way back)."""

    def __init__(self, target_port: int, marker: bytes) -> None:
        self._target = ("127.0.0.1", target_port)
        self._marker = marker
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._target) as upstream:
            while True:  # redis-py sends one command and waits for its reply
                command = client.recv(65536)
                if not command:
                    return
                upstream.sendall(command)
                reply = upstream.recv(65536)
                if not reply:
                    return
                if self._marker in command and reply == b":1\r\n" and not self.dropped:
                    self.dropped += 1
                    return  # the command ran; its reply is lost with the connection
                client.sendall(reply)

    def close(self) -> None:
        self._listener.close()


def test_a_lease_whose_reply_was_lost_is_still_taken_by_the_retry(
    redis_server: Any,
) -> None:
    """Redis takes the lease but the connection drops before the reply arrives; redis-py
    sends the script again on a new connection, and the lease script answers its owner
    "taken": the caller holds the lease (with SET NX it would find it held, by itself, and
    wait lease_ttl), and releasing it frees it."""
    proxy = ReplyDropper(redis_server.port, marker=b":lease")
    try:
        cache = RedisTokenCache(proxy.url, namespace="lost", lease_ttl=30)
        lease = cache.lease("key")
        assert proxy.dropped == 1, "the proxy did not drop the lease's reply"
        assert lease is not None, "the retried lease call found its own lease held"
        direct = redis.Redis.from_url(redis_server.url)
        assert direct.exists(cache._key("key", "lease")) == 1
        lease.release()
        assert direct.exists(cache._key("key", "lease")) == 0
        assert cache.lease("key") is not None  # free for the next taker
        direct.close()
    finally:
        proxy.close()
