"""Code run in child processes by the shared-cache tests (importable for 'spawn')."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    DPoPKey,
    FileTokenCache,
    RedisTokenCache,
    TokenCache,
)

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


def fetch_slowly_then_fork(
    token_url: str, directory: str, lease_ttl: float, ready: Any, child_pid: Any
) -> None:
    """While a thread of this process holds the file lease for a slow token request, fork
    a long-lived child (as a fork-based worker pool would); report its pid; wait to be
    killed by the test."""
    auth = ClientCredentialsAuth(token_url, CLIENT_ID, CLIENT_SECRET, retries=0,
                                 cache=FileTokenCache(directory, lease_ttl=lease_ttl))
    key = auth._holder._shared.key  # type: ignore[union-attr]
    threading.Thread(target=auth.fetch_token, daemon=True).start()
    probe = FileTokenCache(directory, lease_ttl=lease_ttl)
    while True:  # until the fetching thread holds the lease
        lease = probe.lease(key)
        if lease is None:
            break
        lease.release()
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    child_pid.value = pid
    ready.set()
    time.sleep(600)


def hold_lock_file(path: str, ready: Any) -> None:
    """Open ``path`` and hold an exclusive flock on it until killed."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    time.sleep(600)


def use_cache(token_url: str, resource_url: str, cache: TokenCache, results: Any) -> None:
    """Call the API once with an auth using ``cache`` (unpickled here); report the status
    and the access token used."""
    auth = ClientCredentialsAuth(token_url, CLIENT_ID, CLIENT_SECRET, cache=cache)
    status = requests.get(resource_url, auth=auth, timeout=10).status_code
    results.put((status, auth.token.access_token if auth.token else None, repr(cache)))


def use_dpop_key(
    token_url: str, resource_url: str, spec: tuple[str, str], key_path: str | None,
    barrier: Any, results: Any, call_api: bool, lease_ttl: float = 5.0,
) -> None:
    """Load the DPoP key in the PEM file ``key_path`` (``None``: generate one), start
    together with the other processes, then authorize one API request through the shared
    cache (of this ``lease_ttl``). Reports ``(key_path, thumbprint, Authorization, DPoP
    proof, status)``: the headers the auth set, and the API's status when ``call_api``
    (else ``None``, unsent).
    """
    key = DPoPKey.load(key_path) if key_path is not None else DPoPKey.generate()
    auth = ClientCredentialsAuth(token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=make_cache(spec, lease_ttl), dpop=key, retries=0)
    barrier.wait(30)
    prepared = requests.Request("GET", resource_url, auth=auth).prepare()
    status = None
    if call_api:
        with requests.Session() as session:
            status = session.send(prepared, timeout=10).status_code
    proof = prepared.headers.get("DPoP")
    results.put((key_path, key.thumbprint, str(prepared.headers["Authorization"]),
                 None if proof is None else str(proof), status))


def churn_file_cache(
    directory: str, keys: list[str], seed: int, seconds: float, lease_ttl: float,
    barrier: Any, holders: Any, results: Any,
) -> None:
    """A random schedule (from ``seed``) of get / set / lease / delete / sweep on ``keys``
    of one FileTokenCache that sweeps at every set, for ``seconds``. Tokens are stored
    live or already expired past the sweep's grace, so that sweeps remove the files of
    keys in use. ``holders`` (a shared int array, one per key) counts the lease holders
    of each key. Reports counts: operations, leases taken, ``overlaps`` (a lease taken
    while another process held that key's), ``wrong`` (an entry not of its key, not
    matching its fingerprint, or expired), ``warnings`` logged, exceptions by type."""
    import hashlib
    import logging
    import random

    from requests_oauthcc.cache import CacheEntry

    rng = random.Random(seed)
    cache = FileTokenCache(directory, lease_ttl=lease_ttl, sweep_interval=0)
    counts: Counter[str] = Counter()

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counts["warnings"] += 1

    logging.getLogger("requests_oauthcc").addHandler(Count(logging.WARNING))

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    barrier.wait(30)
    stop_at = time.monotonic() + seconds
    written = 0
    while time.monotonic() < stop_at:
        index = rng.randrange(len(keys))
        key = keys[index]
        choice = rng.random()
        counts["operations"] += 1
        try:
            if choice < 0.3:
                before = time.time()
                entry = cache.get(key)
                if entry is not None:
                    owner, expires, _ = entry.payload.split("|")
                    if (owner != key or sha(entry.payload) != entry.fingerprint
                            or float(expires) < before - 1.0):
                        counts["wrong"] += 1
            elif choice < 0.55:
                ttl = rng.choice([-(lease_ttl + 5), -(lease_ttl + 5), 0.05, 30.0])
                written += 1
                payload = f"{key}|{time.time() + ttl}|{os.getpid()}-{written}"
                cache.set(key, CacheEntry(sha(payload), payload), ttl)
            elif choice < 0.85:
                lease = cache.lease(key)
                if lease is not None:
                    counts["leases"] += 1
                    with holders.get_lock():
                        holders[index] += 1
                        if holders[index] != 1:
                            counts["overlaps"] += 1
                    time.sleep(rng.random() * 0.003)
                    with holders.get_lock():
                        holders[index] -= 1
                    lease.release()
            elif choice < 0.95:
                entry = cache.get(key)
                if entry is not None:
                    cache.delete(key, entry.fingerprint)
            else:
                cache.sweep()
        except Exception as exc:
            counts[type(exc).__name__] += 1
    results.put((seed, dict(counts)))


def sweep_forever(directory: str, lease_ttl: float, ready: Any, removed: Any) -> None:
    """Sweep ``directory`` over and over, adding the files removed to ``removed`` (a
    shared int); the test kills us."""
    cache = FileTokenCache(directory, lease_ttl=lease_ttl)
    ready.set()
    while True:
        count = cache.sweep()
        if count:
            with removed.get_lock():
                removed.value += count
        time.sleep(0.001)
