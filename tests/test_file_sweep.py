"""The FileTokenCache sweep, with real files and real processes: expired keys' files go,
live keys, held locks and leases, and whatever the cache did not make stay; the sweep is
bounded, never fails a write, and under concurrent use never lets two processes hold one
lease, never serves a wrong token and never costs a duplicate token request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import pickle
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from requests_oauthcc import FileTokenCache
from requests_oauthcc import _file_sweep as file_sweep
from requests_oauthcc._file_locks import HeldLock, fcntl_module, is_linked, open_own
from requests_oauthcc.cache import CacheEntry, CacheError
from requests_oauthcc.cache_key import KEY_PATTERN
from requests_oauthcc.testing import OAuthTestServer

from .conftest import FORK_WARNING
from .workers import churn_file_cache, hammer, hold_lease_forever, hold_lock_file, sweep_forever

GRACE = 1.0  # the lease_ttl of the caches below, hence the sweep's grace
DEAD = -(GRACE + 5)  # a ttl: expired over the grace ago


def key(n: object) -> str:
    """A cache key as cache_key() makes them."""
    return "oauthcc-" + hashlib.sha256(str(n).encode()).hexdigest()[:40]


def entry(name: str) -> CacheEntry:
    payload = f"payload of {name}"
    return CacheEntry(hashlib.sha256(payload.encode()).hexdigest(), payload)


def files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def key_files(k: str) -> set[str]:
    return {f"{k}.json", f"{k}.lock", f"{k}.lease"}


def make(directory: Path, sweep_interval: float | None = None) -> FileTokenCache:
    return FileTokenCache(directory, lease_ttl=GRACE, sweep_interval=sweep_interval)


def store(cache: FileTokenCache, k: str, ttl: float) -> None:
    """What a fetch leaves: the token file, its lock file and its (released) lease file."""
    lease = cache.lease(k)
    assert lease is not None
    cache.set(k, entry(k), ttl)
    lease.release()


def expired_record() -> bytes:
    return json.dumps({"fingerprint": "f", "payload": "p",
                       "expires_at": time.time() - 3600}).encode()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "tokens"


def test_key_pattern_is_what_cache_key_makes() -> None:
    """The names the sweep considers are those of cache_key(): a key it makes matches
    KEY_PATTERN, and its files the sweep's patterns."""
    from requests_oauthcc.cache_key import cache_key

    made = cache_key(token_url="https://as/token", client_id="c", auth_method="basic",
                     scope="a", audience=None, resources=[], extra_params=[],
                     credential="x", dpop_jkt="thumb")
    assert re.fullmatch(KEY_PATTERN, made)
    for suffix in (".json", ".lock", ".lease"):
        assert file_sweep._FILE.fullmatch(made + suffix)
    assert file_sweep._TEMP.fullmatch(f".{made}.{'ab' * 8}.tmp")


# -- what goes, what stays ------------------------------------------------------------------


def test_sweep_removes_expired_keys_with_their_lock_and_lease_files(directory: Path) -> None:
    """Keys expired over the grace ago lose their token, lock and lease files; lock or
    lease files without a token go too. A live key, one expired within the grace and one
    without expiry keep all theirs, and the live token is still served."""
    grace = 4.0  # "recent" stays within it however slowly the stores below run (fsyncs)
    cache = FileTokenCache(directory, lease_ttl=grace, sweep_interval=None)
    live, recent, forever, dead1, dead2, lease_only, lock_only = (key(n) for n in range(7))
    store(cache, live, 3600)
    store(cache, recent, -grace / 4)
    store(cache, forever, math.inf)
    store(cache, dead1, -(grace + 5))
    store(cache, dead2, -(grace + 5))
    lease = cache.lease(lease_only)
    assert lease is not None
    lease.release()
    cache.delete(lock_only, "no such token")  # takes the write lock: leaves a lock file
    assert f"{lock_only}.lock" in files(directory)

    assert cache.sweep() == 3 + 3 + 1 + 1
    assert files(directory) == key_files(live) | key_files(recent) | key_files(forever)
    assert cache.get(live) == entry(live)
    assert cache.get(forever) == entry(forever)
    assert cache.sweep() == 0


def test_set_sweeps_first_then_once_per_interval_and_get_never(directory: Path) -> None:
    """The first set() of a cache object sweeps, the next ones not before sweep_interval;
    get() never does; sweep_interval=None never; 0 at every set. Pickles with it."""
    other = make(directory)
    store(other, key("dead"), DEAD)
    cache = make(directory, sweep_interval=60)
    assert cache.get(key("dead")) is None
    assert key_files(key("dead")) <= files(directory), "get() swept"
    cache.set(key("live"), entry("live"), 3600)
    assert files(directory) == {f"{key('live')}.json", f"{key('live')}.lock"}

    store(other, key("dead2"), DEAD)
    cache.set(key("live"), entry("live"), 3600)
    assert key_files(key("dead2")) <= files(directory), "swept twice within the interval"
    never = make(directory, sweep_interval=None)
    never.set(key("live"), entry("live"), 3600)
    assert key_files(key("dead2")) <= files(directory)
    always = make(directory, sweep_interval=0)
    always.set(key("live"), entry("live"), 3600)
    assert not key_files(key("dead2")) & files(directory)
    store(other, key("dead3"), DEAD)
    always.set(key("live"), entry("live"), 3600)
    assert not key_files(key("dead3")) & files(directory)

    again = pickle.loads(pickle.dumps(cache))
    assert (again.sweep_interval, again.lease_ttl) == (60, GRACE)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "60"])
def test_sweep_interval_is_checked(directory: Path, bad: Any) -> None:
    """sweep_interval: None or a finite number of seconds >= 0, else ConfigurationError."""
    from requests_oauthcc import ConfigurationError

    with pytest.raises(ConfigurationError, match="sweep_interval"):
        FileTokenCache(directory, sweep_interval=bad)


def test_old_temporary_files_of_crashed_writers_are_removed(directory: Path) -> None:
    """A writer's temporary file 5 minutes old is removed (for a live key too); a younger
    one stays (its writer may be at work), and so does an old one that is a link."""
    cache = make(directory)
    store(cache, key("live"), 3600)
    old_live, old_dead = f".{key('live')}.{'0' * 16}.tmp", f".{key('gone')}.{'1' * 16}.tmp"
    young, link = f".{key('live')}.{'2' * 16}.tmp", f".{key('live')}.{'3' * 16}.tmp"
    for name in (old_live, old_dead, young):
        (directory / name).write_bytes(b'{"partial')
    (directory / link).symlink_to(directory / young)
    past = time.time() - file_sweep.TEMP_AGE - 60
    for name in (old_live, old_dead):
        os.utime(directory / name, (past, past))
    os.utime(directory / link, (past, past), follow_symlinks=False)

    assert cache.sweep() == 2
    assert files(directory) == key_files(key("live")) | {young, link}


# -- held locks and leases ------------------------------------------------------------------


def test_held_lease_or_lock_is_never_removed(directory: Path) -> None:
    """Another process holding the lease of an expired key (fetching its next token) or
    its write lock (writing it): the sweep leaves every file of those keys; once the
    holders are dead, their files go."""
    cache = make(directory)
    fetching, writing = key("fetching"), key("writing")
    store(cache, fetching, DEAD)
    store(cache, writing, DEAD)
    ctx = multiprocessing.get_context("spawn")
    leased, locked = ctx.Event(), ctx.Event()
    holders = [
        ctx.Process(target=hold_lease_forever, args=(("file", str(directory)), fetching, leased)),
        ctx.Process(target=hold_lock_file, args=(str(directory / f"{writing}.lock"), locked)),
    ]
    try:
        for holder in holders:
            holder.start()
        assert leased.wait(30) and locked.wait(30)
        assert cache.lease(fetching) is None
        assert cache.sweep() == 0
        assert files(directory) == key_files(fetching) | key_files(writing)
        assert cache.lease(fetching) is None, "the held lease must still be the one there"
    finally:
        for holder in holders:
            if holder.pid is not None:
                os.kill(holder.pid, signal.SIGKILL)
            holder.join(10)
    assert cache.sweep() == 6
    assert files(directory) == set()


def test_lock_file_removed_between_open_and_flock_is_seen_as_removed(directory: Path) -> None:
    """A process that opened a lease file which a sweep then removed (nobody held it) gets
    its flock on the removed file, sees that it is no longer linked, and the lease goes to
    the file now there: one holder at a time."""
    cache = make(directory)
    k = key("dead")
    store(cache, k, DEAD)
    fcntl = fcntl_module()
    where = os.open(directory, os.O_RDONLY)
    try:
        stale = HeldLock(open_own(where, f"{k}.lease", os.O_RDWR), fcntl)  # opened, not locked
        assert cache.sweep() == 3
        assert stale.try_lock()  # on the removed file: nobody else ever will lock that one
        assert not is_linked(where, f"{k}.lease", stale.fd)
        lease = cache.lease(k)
        assert lease is not None, "the stale holder does not block the file there now"
        assert is_linked(where, f"{k}.lease", lease.fd)  # type: ignore[attr-defined]
        assert cache.lease(k) is None
        lease.release()
        stale.release()
    finally:
        os.close(where)


# -- what the cache did not make -----------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere"
    path.mkdir()
    (path / "target").write_bytes(expired_record())
    return path


PLANTS = ["symlink", "fifo", "directory", "another user's"]


@pytest.mark.parametrize("suffix", [".json", ".lock", ".lease"])
@pytest.mark.parametrize("kind", PLANTS)
def test_planted_thing_at_a_key_name_keeps_that_key(
    directory: Path, elsewhere: Path, kind: str, suffix: str
) -> None:
    """A symlink, FIFO, directory or another user's file at a key's token, lock or lease
    name: the sweep removes nothing of that key (its expired token file stays), follows
    no link, writes nothing elsewhere, and finishes promptly; other dead keys still go."""
    cache = make(directory)
    k, other = key("planted"), key("other")
    store(cache, k, DEAD)
    store(cache, other, DEAD)
    path = directory / f"{k}{suffix}"
    path.unlink()
    if kind == "symlink":
        path.symlink_to(elsewhere / "target")
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(expired_record())
        os.chown(path, 65534, 65534)
    before = files(directory)
    started = time.monotonic()
    assert cache.sweep() == 3  # the other key's
    assert time.monotonic() - started < 5
    assert files(directory) == before - key_files(other)
    assert path.is_symlink() if kind == "symlink" else path.exists()
    assert os.listdir(elsewhere) == ["target"]
    assert json.loads((elsewhere / "target").read_bytes())["payload"] == "p"


def test_names_the_cache_does_not_make_are_left_alone(directory: Path) -> None:
    """Expired-looking files (and old temporary-looking ones) under names that are not a
    cache key's own, even nearly, all stay; keys set by hand (not by cache_key) too."""
    cache = make(directory)
    k = key("x")[len("oauthcc-"):]
    names = [f"oauthcc-{k[:-1]}.json", f"oauthcc-{k.upper()}.json", f"oauthcc-{k}.json.bak",
             f"my-oauthcc-{k}.json", f"oauthcc-{k}0.json", f"oauthcc-{k}.JSON", "k.json",
             "k.lock", f".oauthcc-{k}.{'a' * 15}.tmp", f".oauthcc-{k}.{'a' * 16}.tmp.x",
             f"oauthcc-{k}.lock~", "notes.txt", f"oauthcc-{k}.json\n"]
    for name in names:
        (directory / name).write_bytes(expired_record())
        os.utime(directory / name, (time.time() - 3600,) * 2)
    cache.set("k", entry("k"), DEAD)  # a key a caller chose: the cache never sweeps it
    assert cache.sweep() == 0
    assert files(directory) == set(names)


@pytest.mark.parametrize("problem", ["writable by others", "another user's"])
def test_directory_failing_the_checks_is_not_swept(directory: Path, problem: str) -> None:
    """A directory opened to others or given to another user after the constructor: no
    sweep (CacheError from sweep(), set() refused as before), every file stays."""
    cache = make(directory, sweep_interval=0)
    store(make(directory), key("dead"), DEAD)
    if problem == "writable by others":
        directory.chmod(0o777)
    else:
        os.chown(directory, 65534, 65534)
    with pytest.raises(CacheError):
        cache.sweep()
    with pytest.raises(CacheError):
        cache.set(key("live"), entry("live"), 3600)
    assert files(directory) == key_files(key("dead"))


# -- failures and bounds --------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), RuntimeError("boom")])
def test_failed_sweep_is_logged_and_never_fails_set(
    directory: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    """Whatever a sweep raises, set() has stored its token and returns; one WARNING."""
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(file_sweep, "sweep", broken)
    cache = make(directory, sweep_interval=0)
    with caplog.at_level(logging.WARNING, logger="requests_oauthcc"):
        cache.set(key("live"), entry("live"), 3600)
    assert cache.get(key("live")) == entry("live")
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "sweeping token cache" in warning and "failed" in warning


def test_sweep_is_bounded_and_clears_a_big_directory_over_a_few_runs(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5,000 names the cache did not make and 300 dead keys: each sweep examines at most
    MAX_KEYS keys, in well under a second here; a few sweeps remove every dead key and
    nothing else. With MAX_NAMES lowered to 1,000, a sweep reads no more names."""
    cache = make(directory)
    for n in range(5000):
        (directory / f"other-{n}").touch()
    for n in range(300):
        store(cache, key(n), DEAD)
    fcntl = fcntl_module()

    def sweep_once() -> file_sweep.Swept:
        where = os.open(directory, os.O_RDONLY)
        try:
            started = time.monotonic()
            swept = file_sweep.sweep(where, fcntl, grace=GRACE, keep=None)
            assert time.monotonic() - started < file_sweep.MAX_SECONDS + 1.0
            return swept
        finally:
            os.close(where)

    runs = 0
    while any(p.suffix == ".json" for p in directory.iterdir()):
        runs += 1
        assert runs <= 10
        swept = sweep_once()
        assert swept.listed <= file_sweep.MAX_NAMES
        assert 0 < swept.examined <= file_sweep.MAX_KEYS
        assert swept.removed == 3 * (swept.examined - swept.skipped)
    assert files(directory) == {f"other-{n}" for n in range(5000)}
    monkeypatch.setattr(file_sweep, "MAX_NAMES", 1000)
    assert sweep_once().listed == 1000


# -- concurrency ------------------------------------------------------------------------------


@pytest.fixture
def seeds() -> Iterator[list[int]]:
    base = random.randrange(1 << 30)
    yield [base + n for n in range(6)]


def test_concurrent_use_and_sweeps_never_share_a_lease_or_serve_a_wrong_token(
    directory: Path, seeds: list[int]
) -> None:
    """6 processes (random schedules) get, set (live or long-expired tokens), lease,
    delete and sweep 4 keys for 4 s, each sweeping at every set, a 7th sweeping in a
    loop: no exception leaves the cache, nothing is logged, no entry is another key's,
    unmatched or expired, and no lease is ever held by two processes at once (so no
    duplicate token request). Afterwards only the cache's own names remain."""
    keys = [key(n) for n in range(4)]
    make(directory)
    ctx = multiprocessing.get_context("spawn")
    barrier, holders, results = ctx.Barrier(len(seeds)), ctx.Array("i", len(keys)), ctx.Queue()
    ready, removed = ctx.Event(), ctx.Value("i", 0)
    sweeper = ctx.Process(target=sweep_forever, args=(str(directory), GRACE, ready, removed))
    workers = [ctx.Process(target=churn_file_cache, args=(
        str(directory), keys, seed, 4.0, GRACE, barrier, holders, results)) for seed in seeds]
    sweeper.start()
    try:
        assert ready.wait(30)
        for w in workers:
            w.start()
        reports = [results.get(timeout=60) for _ in workers]
        for w in workers:
            w.join(30)
            assert w.exitcode == 0
    finally:
        os.kill(sweeper.pid, signal.SIGKILL)  # type: ignore[arg-type]
        sweeper.join(10)
    total: Counter[str] = Counter()
    for _, counts in reports:
        total.update(counts)
    problems = {k: v for k, v in total.items() if k not in ("operations", "leases")}
    assert problems == {}, f"seeds {seeds}: {problems}"
    assert total["operations"] > 1000 and total["leases"] > 100, total
    assert removed.value > 0, "the sweeper never removed anything: the test tests nothing"
    pattern = re.compile(rf"(?:{KEY_PATTERN})\.(?:json|lock|lease)")
    leftovers = files(directory)
    assert all(pattern.fullmatch(name) for name in leftovers), leftovers
    assert {name.partition(".")[0] for name in leftovers} <= set(keys)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_fleet_rounds_make_one_token_request_each_while_a_sweeper_runs(
    server: OAuthTestServer, directory: Path
) -> None:
    """Rounds of 4 processes x 2 threads (a cron job) on one key, each round after the
    previous token expired past the grace, while another process sweeps in a loop and
    removes the dead token's files between rounds: one token request per round, every
    call a 200."""
    server.token_lifetime = 1
    spec = ("file", str(directory))
    make(directory)
    ctx: Any = multiprocessing.get_context("fork")
    ready, removed = ctx.Event(), ctx.Value("i", 0)
    sweeper = ctx.Process(target=sweep_forever, args=(str(directory), 0.2, ready, removed))
    sweeper.start()
    total: Counter[str] = Counter()
    rounds = 3
    try:
        assert ready.wait(30)
        for _ in range(rounds):
            barrier, results = ctx.Barrier(4), ctx.Queue()
            workers = [ctx.Process(target=hammer, args=(
                server.token_url, server.resource_url, spec, barrier, results, 2, 0, 0.1))
                for _ in range(4)]
            for w in workers:
                w.start()
            for _ in workers:
                total.update(results.get(timeout=60)[1])
            for w in workers:
                w.join(30)
                assert w.exitcode == 0
            time.sleep(1.5)  # the token expired 0.5 s ago: over the sweeper's grace
    finally:
        os.kill(sweeper.pid, signal.SIGKILL)
        sweeper.join(10)
    assert total == Counter({"200": rounds * 4 * 2})
    assert server.token_requests == rounds
    assert removed.value >= 3 * rounds - 2, removed.value  # token, lock, lease per round

