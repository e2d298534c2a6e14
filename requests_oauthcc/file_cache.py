"""A token cache in a directory, shared by the processes of one host (POSIX)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import secrets
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from .cache import MAX_ENTRY_BYTES, CacheEntry, CacheError, Lease, _restore, check_lease_ttl
from .errors import ConfigurationError

__all__ = ["FileTokenCache"]

logger = logging.getLogger(__name__)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_SYMLINK_ERRNOS = (errno.ELOOP, errno.EMLINK)  # what O_NOFOLLOW gives on Linux / BSDs


def _fcntl() -> ModuleType:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise ConfigurationError(
            "FileTokenCache needs POSIX file locks (fcntl); use RedisTokenCache here"
        ) from None
    return fcntl


class _HeldLock:
    """An open lease or lock file of this process, to be ``flock``-ed.

    ``flock`` belongs to the open file description, which a forked child shares: were the
    child to keep its copy, the lock would outlive this process for as long as the child
    lives. Every held lock is therefore registered, and a forked child closes its copies
    (without unlocking: that would free the parent's lock) before running anything else.
    """

    def __init__(self, fd: int, fcntl: ModuleType) -> None:
        self._fd: int | None = fd
        self._fcntl = fcntl
        with _HELD_GUARD:
            _HELD.add(self)

    def try_lock(self) -> bool:
        """Take the lock if free (``flock`` exclusive, non-blocking); raises ``OSError``."""
        fd = self._fd
        if fd is None:
            raise OSError(errno.EBADF, "the lock file was closed")
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Unlock and close (a no-op the second time, or in a forked child)."""
        with _HELD_GUARD:
            fd, self._fd = self._fd, None
            _HELD.discard(self)
        if fd is not None:
            try:
                self._fcntl.flock(fd, self._fcntl.LOCK_UN)  # frees it even if a copy leaked
            finally:
                os.close(fd)

    def _forget_in_child(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_HELD: weakref.WeakSet[_HeldLock] = weakref.WeakSet()
_HELD_GUARD = threading.Lock()


def _before_fork() -> None:
    _HELD_GUARD.acquire()


def _after_fork_in_parent() -> None:
    _HELD_GUARD.release()


def _after_fork_in_child() -> None:
    for held in list(_HELD):
        held._forget_in_child()
    _HELD.clear()
    _HELD_GUARD.release()  # taken by the forking thread, which is the child's only one


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


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

    Pickles as its directory and ``lease_ttl``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, lease_ttl: float = 30.0) -> None:
        self._fcntl = _fcntl()
        self.directory = Path(directory)
        self.lease_ttl = check_lease_ttl(lease_ttl)
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
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
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
        with self._opened_directory() as directory:
            held = _HeldLock(self._open_lock_file(directory, f"{key}.lease"), self._fcntl)
        try:
            if held.try_lock():
                return held
        except OSError as exc:
            held.release()
            raise CacheError(f"cannot lock a lease file in {self._where()}: "
                             f"{exc.strerror}") from None
        held.release()
        return None

    # -- files ----------------------------------------------------------------------------

    def _where(self) -> str:
        return repr(str(self.directory))

    @contextlib.contextmanager
    def _opened_directory(self) -> Iterator[int]:
        """The directory, opened and checked: owned by this user, writable by no one else."""
        try:
            fd = os.open(self.directory, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
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
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=directory)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _SYMLINK_ERRNOS:
                return self._miss(name, "is a symbolic link")
            raise CacheError(f"cannot read a token file in {self._where()}: "
                             f"{exc.strerror}") from None
        try:
            problem = _file_problem(os.fstat(fd))
            if problem is not None:
                return self._miss(name, problem)
            data = _read_at_most(fd, MAX_ENTRY_BYTES + 1)
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

    def _open_lock_file(self, directory: int, name: str) -> int:
        """Open (creating) a lease or lock file: a regular file of ours, or CacheError."""
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC,
                         0o600, dir_fd=directory)
        except OSError as exc:
            what = "is a symbolic link" if exc.errno in _SYMLINK_ERRNOS else exc.strerror
            raise CacheError(f"cannot open {name} in {self._where()}: {what}") from None
        try:
            problem = _file_problem(os.fstat(fd))
        except OSError as exc:
            problem = exc.strerror
        if problem is not None:
            os.close(fd)
            raise CacheError(f"cannot use {name} in {self._where()}: it {problem}")
        return fd

    @contextlib.contextmanager
    def _locked(self, directory: int, key: str) -> Iterator[None]:
        """The write lock of ``key``, waited for at most ``lease_ttl`` (else CacheError)."""
        held = _HeldLock(self._open_lock_file(directory, f"{key}.lock"), self._fcntl)
        try:
            deadline = time.monotonic() + self.lease_ttl
            pause = 0.005
            while not held.try_lock():
                if time.monotonic() >= deadline:
                    raise CacheError(f"the lock of a token file in {self._where()} was held "
                                     f"for over {self.lease_ttl:.0f}s")
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            yield
        except OSError as exc:
            raise CacheError(f"cannot lock a token file in {self._where()}: "
                             f"{exc.strerror}") from None
        finally:
            held.release()

    # -- copies -----------------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (FileTokenCache, {"directory": str(self.directory),
                                            "lease_ttl": self.lease_ttl}))

    def __deepcopy__(self, memo: dict[int, Any]) -> FileTokenCache:
        return self

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.directory)!r})"


def _file_problem(info: os.stat_result) -> str | None:
    """Why a file found in the cache directory may not be used, or ``None``."""
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.geteuid():
        return f"is owned by another user (uid {info.st_uid})"
    return None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
