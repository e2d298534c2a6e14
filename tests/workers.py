"""Code run in child processes by the shared-cache tests (importable for 'spawn')."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

import requests

from requests_oauthcc import ClientCredentialsAuth, FileTokenCache, RedisTokenCache, TokenCache

from .conftest import CLIENT_ID, CLIENT_SECRET


def make_cache(spec: tuple[str, str], lease_ttl: float = 5.0) -> TokenCache:
    kind, where = spec
    if kind == "file":
        return FileTokenCache(where, lease_ttl=lease_ttl)
    return RedisTokenCache(where, lease_ttl=lease_ttl)


def hammer(
    token_url: str, resource_url: str, spec: tuple[str, str], barrier: Any, results: Any,
    threads: int, seconds: float, leeway: float,
) -> None:
    """Start together with the other processes, then call the API from ``threads`` threads
    for ``seconds`` (or once each when 0); report status counts."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    auth = ClientCredentialsAuth(token_url, CLIENT_ID, CLIENT_SECRET, cache=make_cache(spec),
                                 leeway=leeway)
    barrier.wait(30)
    stop_at = time.monotonic() + seconds

    def work() -> None:
        with requests.Session() as session:
            session.auth = auth
            while True:
                try:
                    key = str(session.get(resource_url, timeout=10).status_code)
                except Exception as exc:
                    key = type(exc).__name__
                with lock:
                    counts[key] += 1
                if time.monotonic() >= stop_at:
                    return

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put((os.getpid(), dict(counts)))


def hold_lease_forever(spec: tuple[str, str], key: str, ready: Any) -> None:
    """Take the fetch lease for ``key`` and never release it (the test kills us)."""
    lease = make_cache(spec).lease(key)
    assert lease is not None
    ready.set()
    time.sleep(600)
