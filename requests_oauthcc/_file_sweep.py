"""The sweep of a :class:`~requests_oauthcc.file_cache.FileTokenCache` directory: removing
the files of keys that no process will read again, a bounded amount at a time.

Every key's files are examined and removed while holding that key's write lock (its
``.lock`` file, taken without waiting): no write of that key's token can run meanwhile,
so what is removed is what was examined. A lock or lease file is removed only while this
sweep holds its ``flock``; a process that opened it before takes the ``flock`` afterwards
on the removed file, sees so (:func:`~requests_oauthcc._file_locks.is_linked`) and opens the
new one. Only names a cache makes (``oauthcc-<40 hex>.json`` / ``.lock`` / ``.lease``,
``.oauthcc-<40 hex>.<16 hex>.tmp``) are considered, only regular files of this user are
opened (checked before opening, so a FIFO or device is never opened, and again after), no
symbolic link is followed, and names are unlinked within the checked directory only.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from ._file_locks import HeldLock, Refused, file_problem, lock_if_free, open_own, read_at_most
from .cache import MAX_ENTRY_BYTES
from .cache_key import KEY_PATTERN

logger = logging.getLogger("requests_oauthcc.file_cache")

MAX_NAMES = 16384
"""Directory entries read per sweep, at most (~10 ms): the first ones in directory order.
Removing files brings the next ones in, so a backlog of dead keys goes over successive
sweeps; only a directory whose first MAX_NAMES names are all of live keys or foreign
files is not swept beyond them."""

MAX_KEYS: Final = 64
"""Keys examined per sweep, at most (picked at random among those listed)."""

MAX_SECONDS: Final = 0.25
"""A sweep examines no new key after this many seconds."""

TEMP_AGE: Final = 300.0
"""Seconds after which a temporary file found under its key's lock is a crashed writer's."""

_FILE = re.compile(rf"({KEY_PATTERN})\.(?:json|lock|lease)")
_TEMP = re.compile(rf"\.({KEY_PATTERN})\.[0-9a-f]{{16}}\.tmp")


@dataclass
class Swept:
    """What one sweep did: names ``listed``, keys ``examined`` and, of those, ``skipped``
    (in use, or holding something the cache did not make), files ``removed``."""

    listed: int = 0
    examined: int = 0
    skipped: int = 0
    removed: int = 0


def sweep(directory: int, fcntl: ModuleType, *, grace: float, keep: str | None) -> Swept:
    """Remove, in the checked, open ``directory``, the token files expired more than
    ``grace`` seconds ago with their lock and lease files, lock and lease files of no
    token that nobody holds, and crashed writers' temporary files; never ``keep``'s.

    Bounded: :data:`MAX_NAMES` names read, :data:`MAX_KEYS` keys examined, no key begun
    after :data:`MAX_SECONDS`. Raises ``OSError`` if the directory cannot be listed; a key
    whose files cannot be examined or removed is skipped (logged at DEBUG).
    """
    swept = Swept()
    names: dict[str, list[str]] = {}
    with os.scandir(directory) as entries:
        for entry in itertools.islice(entries, MAX_NAMES):
            swept.listed += 1
            match = _FILE.fullmatch(entry.name) or _TEMP.fullmatch(entry.name)
            if match is not None and match.group(1) != keep:
                names.setdefault(match.group(1), []).append(entry.name)
    keys = list(names)
    if len(keys) > MAX_KEYS:  # at random: keys in use listed first never stall the rest
        keys = random.sample(keys, MAX_KEYS)
    deadline = time.monotonic() + MAX_SECONDS
    for key in keys:
        if time.monotonic() >= deadline:
            break
        swept.examined += 1
        try:
            removed = _sweep_key(directory, key, names[key], fcntl, grace)
        except (OSError, Refused) as exc:
            logger.debug("sweep left key %s alone: %s", key, exc)
            removed = None
        if removed is None:
            swept.skipped += 1
        else:
            swept.removed += removed
    return swept


def _sweep_key(directory: int, key: str, names: list[str], fcntl: ModuleType,
               grace: float) -> int | None:
    """How many files of ``key`` were removed (its old temporary files only, if its token
    is live or not the cache's own), or ``None`` if it is in use (its lock or lease held).
    Raises :class:`Refused` if its lock or lease name holds what the cache did not make,
    ``OSError`` if a file cannot be examined or removed: nothing more is removed then."""
    try:
        os.stat(f"{key}.lock", dir_fd=directory, follow_symlinks=False)
        lock_existed = True
    except FileNotFoundError:
        lock_existed = False
    lock = lock_if_free(directory, f"{key}.lock", fcntl)
    if lock is None:
        return None  # a token is being written
    try:
        removed = sum(_remove_if_old(directory, name) for name in names
                      if name.endswith(".tmp"))
        state, token = _token_file(directory, f"{key}.json", grace)
        if state == "live":
            return removed
        try:
            lease = lock_if_free(directory, f"{key}.lease", fcntl, create=False)
        except FileNotFoundError:
            lease = None
        else:
            if lease is None:
                return None  # a token is being fetched: it will be written here
        try:
            if token is not None:
                removed += _unlink_if_same(directory, f"{key}.json", token)
            if lease is not None:
                removed += _unlink_held(directory, f"{key}.lease", lease)
        finally:
            if lease is not None:
                lease.release()
        unlinked = _unlink_held(directory, f"{key}.lock", lock)
        removed += unlinked if lock_existed else 0  # else we made it
        logger.debug("sweep removed the files of key %s (token %s)", key, state)
        return removed
    finally:
        lock.release()


def _token_file(directory: int, name: str,
                grace: float) -> tuple[str, os.stat_result | None]:
    """``("absent", None)``, ``("expired", its stat)`` if it expired over ``grace``
    seconds ago, else ``("live", None)``: unexpired, without expiry, unreadable, or not a
    regular file of this user (never opened then)."""
    try:
        if file_problem(os.stat(name, dir_fd=directory, follow_symlinks=False)) is not None:
            return "live", None
        fd = open_own(directory, name, os.O_RDONLY)
    except FileNotFoundError:
        return "absent", None
    except Refused:
        return "live", None
    try:
        info = os.fstat(fd)
        data = read_at_most(fd, MAX_ENTRY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_ENTRY_BYTES:
        return "live", None
    from .response import load_json

    record = load_json(data)
    expires_at = record.get("expires_at") if isinstance(record, dict) else None
    if (isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool)
            and math.isfinite(expires_at) and expires_at + grace < time.time()):
        return "expired", info
    return "live", None


def _remove_if_old(directory: int, name: str) -> int:
    """Remove a temporary file older than :data:`TEMP_AGE`, regular and ours: 1, else 0."""
    try:
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if file_problem(info) is not None or time.time() - info.st_mtime < TEMP_AGE:
        return 0
    return _unlink_if_same(directory, name, info)


def _unlink_held(directory: int, name: str, held: HeldLock) -> int:
    return _unlink_if_same(directory, name, os.fstat(held.fd))


def _unlink_if_same(directory: int, name: str, info: os.stat_result) -> int:
    """Unlink ``name`` if it is still the file ``info`` describes: 1, else 0."""
    try:
        there = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if (there.st_dev, there.st_ino) != (info.st_dev, info.st_ino):
            return 0
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        return 0
    return 1
