"""File and Redis caches with real processes: one token for a whole fleet, and faults."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import stat
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, FileTokenCache, RedisTokenCache
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FORK_WARNING, RedisProcess, Spec
from .workers import hammer, hold_lease_forever, make_cache


def run_fleet(
    server: OAuthTestServer, spec: Spec, method: str, processes: int, threads: int,
    seconds: float, leeway: float = 30.0,
) -> Counter[str]:
    ctx: Any = multiprocessing.get_context(method)
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=hammer, args=(server.token_url, server.resource_url, spec, barrier,
                                         results, threads, seconds, leeway))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    total: Counter[str] = Counter()
    for _ in workers:
        _, counts = results.get(timeout=120)
        total.update(counts)
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    return total


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_eight_processes_times_four_threads_cold_make_one_token_request(
    server: OAuthTestServer, spec: Spec, method: str
) -> None:
    """32 callers in 8 processes, starting together with an empty cache: one token."""
    counts = run_fleet(server, spec, method, processes=8, threads=4, seconds=0)
    assert counts == Counter({"200": 32})
    assert server.token_requests == 1


@pytest.mark.filterwarnings(FORK_WARNING)
def test_one_token_per_lifetime_for_the_fleet(server: OAuthTestServer, spec: Spec) -> None:
    """2 s tokens for 10 s across 8 processes: about one token per lifetime, no 401s."""
    server.token_lifetime = 2
    leeway = 0.25
    seconds = 10.0
    counts = run_fleet(server, spec, "fork", processes=8, threads=2, seconds=seconds,
                       leeway=leeway)
    assert set(counts) == {"200"}, counts
    refresh_every = server.token_lifetime - leeway
    assert server.token_requests <= int(seconds / refresh_every) + 2, server.token_requests
    # Refreshed before expiry: a rare request reaching the API after its token's expiry on
    # a loaded machine is retried (callers saw only 200s, above), so allow a couple.
    assert server.resource_rejections <= 2


def test_killed_lease_holder_is_replaced(
    server: OAuthTestServer, spec: Spec
) -> None:
    """A fetcher SIGKILLed while holding the lease: another process takes over after it."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=make_cache(spec, lease_ttl=1.0))
    key = auth._holder._shared.key  # type: ignore[union-attr]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=hold_lease_forever, args=(spec, key, ready))
    holder.start()
    assert ready.wait(30)
    os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
    holder.join(10)
    started = time.monotonic()
    assert requests.get(server.resource_url, auth=auth, timeout=10).status_code == 200
    assert time.monotonic() - started < 5
    assert server.token_requests == 1


def test_entry_ttl_follows_the_token(server: OAuthTestServer, spec: Spec) -> None:
    """The shared entry lives as long as the token, then it is gone."""
    server.token_lifetime = 1
    cache = make_cache(spec)
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=cache)
    auth.fetch_token()
    key = auth._holder._shared.key  # type: ignore[union-attr]
    assert cache.get(key) is not None
    time.sleep(1.1)
    assert cache.get(key) is None


# -- file cache specifics -----------------------------------------------------------------


def test_file_cache_files_are_private(server: OAuthTestServer, tmp_path: Path) -> None:
    """A new directory is 0700 and token files 0600; no temp file is left behind."""
    directory = tmp_path / "tokens"
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=FileTokenCache(directory))
    auth.fetch_token()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.iterdir())
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert not [f for f in files if f.name.endswith(".tmp")]
    assert len([f for f in files if f.suffix == ".json"]) == 1


@pytest.mark.parametrize("content", ["", "{", "[]", '{"fingerprint": 1}', "\x00\x01garbage"])
def test_corrupt_cache_file_is_a_logged_miss(
    server: OAuthTestServer, tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated or corrupt file is treated as a miss, never a crash; the token is fetched."""
    directory = tmp_path / "tokens"
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=FileTokenCache(directory))
    key = auth._holder._shared.key  # type: ignore[union-attr]
    directory.joinpath(f"{key}.json").write_text(content)
    assert requests.get(server.resource_url, auth=auth, timeout=5).status_code == 200
    assert server.token_requests == 1
    assert any("corrupt" in r.getMessage() or "unreadable" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert json.loads(directory.joinpath(f"{key}.json").read_text())["fingerprint"]


# -- redis specifics ------------------------------------------------------------------------


def test_redis_keys_share_a_cluster_hash_tag(
    server: OAuthTestServer, redis_server: RedisProcess
) -> None:
    """Token and lease keys carry the same {hash tag}; the token key has a TTL."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=RedisTokenCache(redis_server.url, namespace="svc"))
    auth.fetch_token()
    key = auth._holder._shared.key  # type: ignore[union-attr]
    [stored] = redis_server.client.keys("svc:*")
    name = stored.decode() if isinstance(stored, bytes) else stored
    assert name == f"svc:{{{key}}}:token"
    ttl_ms = redis_server.client.pttl(stored)
    assert 3500_000 < ttl_ms <= 3600_000
    assert auth.token is not None
    assert auth.token.access_token not in repr(auth._holder._shared.cache)  # type: ignore[union-attr]


def test_redis_outage_falls_back_to_direct_fetch(
    server: OAuthTestServer, start_redis: Callable[[], RedisProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stopped mid-run: requests keep succeeding, fetching tokens directly (logged)."""
    redis = start_redis()
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=RedisTokenCache(redis.url))
    with requests.Session() as session:
        session.auth = auth
        assert session.get(server.resource_url).status_code == 200
        redis.stop()
        server.revoke_all()  # forces a new token while Redis is down
        statuses = [session.get(server.resource_url).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert server.token_requests == 2
    assert any("fetching the token directly" in r.getMessage() for r in caplog.records)


def test_redis_unreachable_from_the_start(server: OAuthTestServer) -> None:
    """A cache URL where nothing listens costs a logged fallback, never a failed request."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=RedisTokenCache("redis://127.0.0.1:1/0"))
    assert requests.get(server.resource_url, auth=auth, timeout=5).status_code == 200


def test_redis_repr_hides_the_url_password() -> None:
    """A password in the Redis URL never shows in repr."""
    cache = RedisTokenCache("redis://:hunter2-pass@127.0.0.1:1/0")
    assert "hunter2" not in repr(cache)
