"""Shared caches: token requests per lifetime for a fleet, and the fast path's cost.

    python3 benchmarks/shared_cache.py [--processes 8] [--seconds 10] [--lifetime 2]

Needs redis-server on PATH (started here on a free port) and the [redis] extra.
1. M processes x 4 threads call the local API for a while with short-lived tokens,
   each process with its own in-memory token, then sharing a FileTokenCache, then a
   RedisTokenCache; prints token requests per token lifetime.
2. In one process, attaching a valid cached token with a RedisTokenCache configured vs
   the default in-memory holder, as a ratio (the fast path must not touch Redis).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from typing import Any

import requests

from requests_oauthcc import ClientCredentialsAuth, FileTokenCache, RedisTokenCache, TokenCache
from requests_oauthcc.testing import OAuthTestServer

CLIENT, SECRET = "bench", "bench-secret"


def _cache(spec: tuple[str, str] | None) -> TokenCache | None:
    if spec is None:
        return None
    kind, where = spec
    return FileTokenCache(where) if kind == "file" else RedisTokenCache(where)


def _worker(token_url: str, resource_url: str, spec: Any, barrier: Any, seconds: float,
            leeway: float) -> None:
    auth = ClientCredentialsAuth(token_url, CLIENT, SECRET, cache=_cache(spec), leeway=leeway)
    barrier.wait()
    stop = time.monotonic() + seconds

    def loop() -> None:
        with requests.Session() as session:
            session.auth = auth
            while time.monotonic() < stop:
                session.get(resource_url, timeout=10).raise_for_status()

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def fleet(spec: Any, processes: int, seconds: float, lifetime: float) -> tuple[int, int]:
    leeway = lifetime / 8
    with OAuthTestServer({CLIENT: SECRET}, token_lifetime=lifetime) as server:
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(processes)
        procs = [ctx.Process(target=_worker, args=(server.token_url, server.resource_url, spec,
                                                   barrier, seconds, leeway))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return server.token_requests, server.resource_requests


def fast_path(redis_url: str) -> tuple[float, float]:
    with OAuthTestServer({CLIENT: SECRET}) as server:
        plain = ClientCredentialsAuth(server.token_url, CLIENT, SECRET)
        shared = ClientCredentialsAuth(server.token_url, CLIENT, SECRET,
                                       cache=RedisTokenCache(redis_url))
        plain.fetch_token()
        shared.fetch_token()
        request = requests.Request("GET", "https://api.example.com/data").prepare()

        def attach(auth: ClientCredentialsAuth) -> None:
            request.hooks = {"response": []}
            auth(request)

        best = {}
        for name, auth in (("memory", plain), ("redis", shared)):
            best[name] = min(timeit.repeat(lambda a=auth: attach(a), number=50_000, repeat=7))
        return best["memory"], best["redis"]


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description="shared token cache benchmark")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--lifetime", type=float, default=2.0)
    args = parser.parse_args()
    redis, redis_url = start_redis()
    try:
        lifetimes = args.seconds / args.lifetime
        print(f"{args.processes} processes x 4 threads, {args.seconds:.0f}s, "
              f"{args.lifetime:.0f}s tokens ({lifetimes:.0f} lifetimes)")
        print(f"{'cache':<24}{'token requests':>16}{'per lifetime':>14}{'API calls':>12}")
        for name, spec in (("none (per process)", None),
                           ("FileTokenCache", ("file", tempfile.mkdtemp())),
                           ("RedisTokenCache", ("redis", redis_url))):
            tokens, calls = fleet(spec, args.processes, args.seconds, args.lifetime)
            print(f"{name:<24}{tokens:>16}{tokens / lifetimes:>14.1f}{calls:>12}")
        memory, shared = fast_path(redis_url)
        print(f"fast path with RedisTokenCache vs in-memory: {shared / memory:.2f}x "
              "(valid token, no Redis call)")
    finally:
        redis.terminate()


if __name__ == "__main__":
    main()
