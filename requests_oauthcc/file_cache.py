"""A token cache in a directory, shared by the processes of one host (POSIX)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from ._file_locks import (
    CLOEXEC,
    DIRECTORY,
    NOFOLLOW,
    Refused,
    fcntl_module,
    lock_if_free,
    open_own,
    read_at_most,
)
from .cache import MAX_ENTRY_BYTES, CacheEntry, CacheError, Lease, _restore, check_lease_ttl
from .errors import ConfigurationError

__all__ = ["SWEEP_INTERVAL", "FileTokenCache"]

logger = logging.getLogger(__name__)

SWEEP_INTERVAL: Final = 300.0
"""Default seconds between two sweeps of one :class:`FileTokenCache` object."""


class FileTokenCache:
    """Tokens kept as files in ``directory``, one per cache key, for one host's processes.

    ``directory``: created with mode 0700 if missing. It must be owned by this user and
    not writable by group or others, else :class:`~requests_oauthcc.errors.ConfigurationError`
    (whoever can write it could plant a token that would be sent to the API); this is
    checked in the constructor and again at every operation (a directory changed since is
    then bypassed, logged). ``lease_ttl``: seconds (positive) that others wait for a live
    lease holder before fetching directly.

    Files are opened relative to the checked directory, never following a symbolic link
    (``O_NOFOLLOW``), close-on-exec, and checked after opening (``fstat``): a regular file
    owned by this user, else the planted thing is a logged miss (token file) or a logged
    bypass (lease and lock files: the token is fetched directly), never a hang. Writes are
    atomic (a new 0600 file with a random name, created exclusively, renamed over the old
    one) and made under a file lock. A corrupt, oversized or unusable token file is a
    logged miss. The fetch lease is an exclusive ``flock``: the kernel releases it when
    its holder dies, so a killed fetcher is replaced at once; a forked child closes the
    copies it inherited, so a lease never outlives the process that took it.

    ``sweep_interval``: seconds (default 300) between two sweeps by this object, ``None``
    for none. A sweep runs in :meth:`set` (after the token is written, so once per token
    lifetime at most), the first time and then when ``sweep_interval`` has passed, never
    in :meth:`get`; :meth:`sweep` runs one now. It removes what no process will read again:

    - a token file whose ``expires_at`` passed more than ``lease_ttl`` seconds ago
      (:meth:`get` already treats it as a miss), with its lock and lease files;
    - lock and lease files without a token file;
    - temporary files of a crashed writer, 5 minutes old;

    always while holding the key's write lock, taken without waiting; a key whose lock or
    lease is held (a token being written or fetched) is left alone. Only names a cache key
    of :func:`~requests_oauthcc.cache_key.cache_key` makes are considered
    (``oauthcc-<40 hex>.json``, ``.lock``, ``.lease``, ``.oauthcc-<40 hex>.<16 hex>.tmp``),
    only regular files of this user (checked before and after opening, no link followed);
    a key with anything else at its token, lock or lease name, a token file without expiry
    (``ttl=math.inf``) or an unreadable one is left alone, and so is a directory failing
    the checks above. A process that opened a lock or lease file a sweep then removed sees
    so after taking its ``flock`` and opens the new one: one holder at a time still. Each
    sweep is bounded (the first 16384 names in directory order read, at most 64 keys
    examined, picked at random, no key begun after 0.25 s; a backlog goes over successive
    sweeps); a failed sweep is logged at WARNING, never fails :meth:`set`.

    Pickles as its directory, ``lease_ttl`` and ``sweep_interval``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, lease_ttl: float = 30.0,
                 sweep_interval: float | None = SWEEP_INTERVAL) -> None:
        self._fcntl = fcntl_module()
        self.directory = Path(directory)
        self.lease_ttl = check_lease_ttl(lease_ttl)
        if sweep_interval is not None and (
                isinstance(sweep_interval, bool) or not isinstance(sweep_interval, (int, float))
                or not math.isfinite(sweep_interval) or sweep_interval < 0):
            raise ConfigurationError("sweep_interval must be None or a number of seconds >= 0; "
                                     f"got {sweep_interval!r}")
        self.sweep_interval = None if sweep_interval is None else float(sweep_interval)
        self._next_sweep = 0.0  # time.monotonic(): the first set() sweeps
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"FileTokenCache directory {str(self.directory)!r} cannot be created: "
                f"{exc.strerror}"
            ) from None
        try:
            with self._opened_directory():
                pass
        except CacheError as exc:
            raise ConfigurationError(str(exc)) from None

    # -- the TokenCache interface ---------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        with self._opened_directory() as directory:
            return self._get(directory, key)

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        record = {
            "fingerprint": entry.fingerprint,
            "payload": entry.payload,
            "expires_at": None if math.isinf(ttl) else time.time() + ttl,
        }
        data = json.dumps(record).encode("utf-8")
        with self._opened_directory() as directory, self._locked(directory, key):
            temp = f".{key}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC,
                             0o600, dir_fd=directory)
            except OSError as exc:
                raise CacheError(f"cannot create a file in {self._where()}: "
                                 f"{exc.strerror}") from None
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(temp, f"{key}.json", src_dir_fd=directory, dst_dir_fd=directory)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=directory)
                raise CacheError(f"cannot write the token file in {self._where()}: "
                                 f"{exc.strerror}") from None
        self._sweep_if_due(key)

    def delete(self, key: str, fingerprint: str) -> None:
        with self._opened_directory() as directory, self._locked(directory, key):
            entry = self._get(directory, key)
            if entry is not None and entry.fingerprint == fingerprint:
                try:
                    os.unlink(f"{key}.json", dir_fd=directory)  # unlink never follows a link
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise CacheError(f"cannot delete a token file in {self._where()}: "
                                     f"{exc.strerror}") from None

    def lease(self, key: str) -> Lease | None:
        name = f"{key}.lease"
        with self._opened_directory() as directory:
            try:
                return lock_if_free(directory, name, self._fcntl)
            except Refused as exc:
                raise CacheError(f"cannot use {name} in {self._where()}: it {exc}") from None
            except OSError as exc:
                raise CacheError(f"cannot lock a lease file in {self._where()}: "
                                 f"{exc.strerror}") from None

    # -- the sweep ------------------------------------------------------------------------

    def sweep(self) -> int:
        """Remove what no process will read again (see the class docstring); the number
        of files removed. Bounded (at most 16384 names read, 64 keys examined, 0.25 s).

        Raises :class:`~requests_oauthcc.cache.CacheError` if the directory fails its
        checks or cannot be listed; a key whose files cannot be examined is left alone.
        """
        return self._sweep(keep=None)

    def _sweep(self, keep: str | None) -> int:
        from ._file_sweep import sweep

        with self._opened_directory() as directory:
            try:
                swept = sweep(directory, self._fcntl, grace=self.lease_ttl, keep=keep)
            except OSError as exc:
                raise CacheError(f"cannot sweep {self._where()}: {exc.strerror}") from None
        logger.debug("swept %s: %d names, %d keys examined (%d in use or kept), %d files "
                     "removed", self._where(), swept.listed, swept.examined, swept.skipped,
                     swept.removed)
        return swept.removed

    def _sweep_if_due(self, key: str) -> None:
        """Sweep if ``sweep_interval`` has passed since this object last did; never raise.

        Two threads may both find it due: sweeps are safe to run concurrently.
        """
        now = time.monotonic()
        if self.sweep_interval is None or now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        try:
            self._sweep(keep=key)  # just written: live
        except Exception as exc:  # a sweep is housekeeping: it never fails a write
            logger.warning("sweeping token cache %s failed: %s", self._where(),
                           exc if isinstance(exc, CacheError) else type(exc).__name__)

    # -- files ----------------------------------------------------------------------------

    def _where(self) -> str:
        return repr(str(self.directory))

    @contextlib.contextmanager
    def _opened_directory(self) -> Iterator[int]:
        """The directory, opened and checked: owned by this user, writable by no one else."""
        try:
            fd = os.open(self.directory, os.O_RDONLY | DIRECTORY | CLOEXEC)
        except OSError as exc:
            raise CacheError(f"FileTokenCache directory {self._where()} cannot be opened: "
                             f"{exc.strerror}") from None
        try:
            info = os.fstat(fd)
            problem = None
            if not stat.S_ISDIR(info.st_mode):
                problem = "is not a directory"
            elif info.st_uid != os.geteuid():
                problem = (f"is owned by another user (uid {info.st_uid}), who could plant "
                           "tokens in it")
            elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                problem = (f"is writable by group or others (mode "
                           f"{oct(stat.S_IMODE(info.st_mode))}), who could plant tokens in it")
            if problem is not None:
                raise CacheError(
                    f"FileTokenCache directory {self._where()} {problem}; use a directory "
                    "of your own with mode 0700 (or let FileTokenCache create it)"
                )
            yield fd
        finally:
            os.close(fd)

    def _get(self, directory: int, key: str) -> CacheEntry | None:
        name = f"{key}.json"
        try:
            fd = open_own(directory, name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except Refused as exc:
            return self._miss(name, str(exc))
        except OSError as exc:
            raise CacheError(f"cannot read a token file in {self._where()}: "
                             f"{exc.strerror}") from None
        try:
            data = read_at_most(fd, MAX_ENTRY_BYTES + 1)
        except OSError as exc:
            raise CacheError(f"cannot read a token file in {self._where()}: "
                             f"{exc.strerror}") from None
        finally:
            os.close(fd)
        if len(data) > MAX_ENTRY_BYTES:
            return self._miss(name, f"is larger than {MAX_ENTRY_BYTES} bytes")
        return self._entry(name, data)

    def _entry(self, name: str, data: bytes) -> CacheEntry | None:
        from .response import load_json

        record: Any = load_json(data)
        if not isinstance(record, dict):
            return self._miss(name, "is not a JSON object (corrupt)")
        found, payload = record.get("fingerprint"), record.get("payload")
        expires_at = record.get("expires_at")
        if not isinstance(found, str) or not isinstance(payload, str):
            return self._miss(name, "has no fingerprint or payload string (corrupt)")
        if expires_at is not None:
            if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
                return self._miss(name, "has an expires_at that is not a number (corrupt)")
            if not expires_at > time.time():  # also refuses NaN
                return None
        return CacheEntry(found, payload)

    def _miss(self, name: str, problem: str) -> CacheEntry | None:
        logger.warning("token cache file %s in %s %s: treated as a miss", name, self._where(),
                       problem)
        return None

    @contextlib.contextmanager
    def _locked(self, directory: int, key: str) -> Iterator[None]:
        """The write lock of ``key``, waited for at most ``lease_ttl`` (else CacheError)."""
        name = f"{key}.lock"
        deadline = time.monotonic() + self.lease_ttl
        pause = 0.005
        try:
            while (held := lock_if_free(directory, name, self._fcntl)) is None:
                if time.monotonic() >= deadline:
                    raise CacheError(f"the lock of a token file in {self._where()} was held "
                                     f"for over {self.lease_ttl:.0f}s")
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
        except Refused as exc:
            raise CacheError(f"cannot use {name} in {self._where()}: it {exc}") from None
        except OSError as exc:
            raise CacheError(f"cannot lock a token file in {self._where()}: "
                             f"{exc.strerror}") from None
        try:
            yield
        finally:
            held.release()

    # -- copies -----------------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (FileTokenCache, {"directory": str(self.directory),
                                            "lease_ttl": self.lease_ttl,
                                            "sweep_interval": self.sweep_interval}))

    def __deepcopy__(self, memo: dict[int, Any]) -> FileTokenCache:
        return self

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.directory)!r})"


