"""Files in a checked cache directory: opened by name relative to it without following a
symbolic link, checked after opening, and locked with ``flock`` (fork-safe, and never on a
lock file that a sweep has removed). Used by :mod:`requests_oauthcc.file_cache`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import weakref
from types import ModuleType

from .errors import ConfigurationError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)
DIRECTORY = getattr(os, "O_DIRECTORY", 0)
SYMLINK_ERRNOS = (errno.ELOOP, errno.EMLINK)  # what O_NOFOLLOW gives on Linux / BSDs


class Refused(Exception):
    """A file at a cache path that may not be used (planted?); the text says why."""


def fcntl_module() -> ModuleType:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise ConfigurationError(
            "FileTokenCache needs POSIX file locks (fcntl); use RedisTokenCache here"
        ) from None
    return fcntl


def file_problem(info: os.stat_result) -> str | None:
    """Why a file found in the cache directory may not be used, or ``None``."""
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.geteuid():
        return f"is owned by another user (uid {info.st_uid})"
    return None


def open_own(directory: int, name: str, flags: int) -> int:
    """``name`` in ``directory`` opened with ``flags`` (plus no-follow, non-blocking,
    close-on-exec; created 0600 with ``O_CREAT``): a regular file of this user.

    Raises :class:`Refused` for a symbolic link or a file of another type or owner,
    ``OSError`` otherwise (``FileNotFoundError`` without ``O_CREAT``).
    """
    try:
        fd = os.open(name, flags | NOFOLLOW | NONBLOCK | CLOEXEC, 0o600, dir_fd=directory)
    except OSError as exc:
        if exc.errno in SYMLINK_ERRNOS:
            raise Refused("is a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a socket (or a device without a driver): planted
            raise Refused("is not a regular file") from None
        raise
    try:
        problem = file_problem(os.fstat(fd))
    except OSError:
        os.close(fd)
        raise
    if problem is not None:
        os.close(fd)
        raise Refused(problem)
    return fd


def is_linked(directory: int, name: str, fd: int) -> bool:
    """Whether ``fd`` is the file linked at ``name`` in ``directory`` now (not removed,
    not replaced)."""
    opened = os.fstat(fd)
    if opened.st_nlink == 0:
        return False
    try:
        there = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (there.st_dev, there.st_ino) == (opened.st_dev, opened.st_ino)


def read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class HeldLock:
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

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise OSError(errno.EBADF, "the lock file was closed")
        return self._fd

    def try_lock(self) -> bool:
        """Take the lock if free (``flock`` exclusive, non-blocking); raises ``OSError``."""
        try:
            self._fcntl.flock(self.fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
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


_HELD: weakref.WeakSet[HeldLock] = weakref.WeakSet()
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


RELOCK_ATTEMPTS = 3
"""Times a free lock file is reopened after finding it removed by a sweep between our
open and our ``flock`` (each time a new file is created in its place)."""


def lock_if_free(directory: int, name: str, fcntl: ModuleType, *,
                 create: bool = True) -> HeldLock | None:
    """The ``flock`` of the lock file ``name``, taken without waiting, on the file linked
    at ``name`` (created if missing and ``create``); ``None`` if another holds it.

    A sweep removes a lock file only while holding its ``flock``; whoever opened it before
    that and takes the ``flock`` after finds it unlinked here, and opens the new one. So of
    all the holders of a ``name`` lock, one at a time holds the file linked there.
    Raises :class:`Refused` or ``OSError`` as :func:`open_own` does.
    """
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    for _ in range(RELOCK_ATTEMPTS):
        held = HeldLock(open_own(directory, name, flags), fcntl)
        try:
            if not held.try_lock():
                held.release()
                return None
            if is_linked(directory, name, held.fd):
                return held
        except BaseException:
            held.release()
            raise
        held.release()  # removed since we opened it: lock the file there now
        if not create:
            return None
    return None
