"""Shared fixtures: a fresh local authorization server per test, and an auth factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.testing import OAuthTestServer

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-Zq8mX4"  # distinctive, so leak checks can search for it


def replace_file(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename), as platforms
    and secret managers replace a credential."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(temp, path)


def in_threads(n: int, target: Callable[[], object]) -> list[object]:
    """Run ``target`` in ``n`` threads released together; their results or exceptions."""
    import threading

    results: list[object] = []
    barrier = threading.Barrier(n)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(target())
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def settle(owner: object) -> None:
    """Wait (10 s at most) for the refresh ahead of expiry that ``owner`` (an auth object or
    a TokenHolder) runs in the background, if one is running."""
    holder = getattr(owner, "_holder", owner)
    thread = getattr(holder, "_ahead", None)
    if thread is not None:
        thread.join(10)


def missing(message: str) -> NoReturn:
    """A server the tests need is not installed: skip here, fail in CI (``CI`` set to
    anything but ``false``/``0``/``no``), where .ci/run installs every one of them."""
    import os

    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(message)
    pytest.skip(message)


class FakeClock:
    """A monotonic clock that tests move by hand instead of sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session", autouse=True)
def no_proxy_from_the_environment() -> Iterator[None]:
    """The tests talk to servers on this host only: a proxy set in the developer's
    environment (as behind a corporate proxy) must not apply, or plain http to them would
    be refused, as it should be. Tests of the proxy rules set their own variables."""
    import os

    saved = {name: os.environ.pop(name) for name in list(os.environ)
             if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    yield
    os.environ.update(saved)


@pytest.fixture
def server() -> Iterator[OAuthTestServer]:
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as srv:
        yield srv


@pytest.fixture
def nonce_server() -> Iterator[OAuthTestServer]:
    """The test server requiring DPoP nonces (RFC 9449 §8, §9) at both its servers."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_nonce=True) as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_auth(server: OAuthTestServer) -> Callable[..., ClientCredentialsAuth]:
    """Build a ClientCredentialsAuth for the test server; keywords override the defaults."""

    def make(**options: Any) -> ClientCredentialsAuth:
        options.setdefault("retries", 0)
        return ClientCredentialsAuth(
            options.pop("token_url", server.token_url),
            options.pop("client_id", CLIENT_ID),
            options.pop("client_secret", CLIENT_SECRET),
            **options,
        )

    return make


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


# -- a real redis-server, started by the tests --------------------------------------------


class RedisProcess:
    """A redis-server on 127.0.0.1, stopped by its pid."""

    def __init__(self, binary: str, directory: str) -> None:
        import socket
        import subprocess
        import time

        import redis

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)
        self.client = client

    def stop(self) -> None:
        from .redis_topologies import stop

        client = getattr(self, "client", None)  # not set if the server never came up
        if client is not None:
            client.close()  # its pooled connections, before the server goes
        stop(self.process)


@pytest.fixture
def start_redis(tmp_path: Any) -> Iterator[Callable[[], RedisProcess]]:
    """Start redis-servers on free ports; all are stopped after the test.

    Without the binary the test skips with the reason, except in CI (CI=true), where it
    fails: .ci/run installs redis-server, so a missing one is a broken build.
    """
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed (apt-get install redis-server)")
    started: list[RedisProcess] = []

    def start() -> RedisProcess:
        process = RedisProcess(binary, str(tmp_path))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def redis_server(start_redis: Callable[[], RedisProcess]) -> RedisProcess:
    return start_redis()


FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"
"""A filterwarnings mark for tests forking worker processes while the test server's
threads run (the workers only use what they build themselves)."""

Spec = tuple[str, str]
"""A shared cache to build in any process: ("file", directory) or ("redis", url)."""


@pytest.fixture(params=["file", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Any) -> Spec:
    """Each shared-cache backend in turn: a fresh directory, or a fresh redis-server."""
    if request.param == "file":
        return ("file", str(tmp_path / "tokens"))
    redis: RedisProcess = request.getfixturevalue("redis_server")
    return ("redis", redis.url)


# -- Redis Cluster and Sentinel, started by the tests (tests/redis_topologies.py) ----------


def redis_binaries() -> tuple[str, str]:
    """redis-server and redis-cli (Debian: redis-server, which depends on redis-tools)."""
    import shutil

    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        missing("redis-server or redis-cli is not installed (apt-get install redis-server)")
    return server, cli


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A three-master Redis Cluster on 127.0.0.1 (made once per test module: creating one
    takes about two seconds); tests use their own namespaces."""
    from .redis_topologies import RedisCluster

    server, cli = redis_binaries()
    cluster = RedisCluster(server, cli, tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_sentinels(tmp_path: Path) -> Iterator[Any]:
    """A master, its replica and three sentinels on 127.0.0.1, fresh for each test (tests
    kill the master)."""
    from .redis_topologies import RedisSentinels

    server, _ = redis_binaries()
    directory = tmp_path / "sentinels"
    directory.mkdir()
    sentinels = RedisSentinels(server, directory)
    yield sentinels
    sentinels.stop()
