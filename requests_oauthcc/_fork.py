"""A lock that a process forked while another thread holds it does not inherit held.

``os.fork`` copies a held :class:`threading.Lock` as held, and the thread that would release
it does not exist in the child: the child's first ``acquire`` waits for ever. The token
holder renews its own lock after a fork; the credential sources (a watched file, a private
key callable, the GitHub Actions token, which is held across a network request) use this
one, renewed in every child.
"""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType

__all__ = ["ForkSafeLock"]


class ForkSafeLock:
    """A :class:`threading.Lock` (``with`` only), renewed unheld in a forked child."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _LOCKS.add(self)

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"ForkSafeLock(locked={self._lock.locked()})"


_LOCKS: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


def _renew_after_fork() -> None:
    """In a forked child no other thread exists: no lock may stay held by one."""
    for lock in list(_LOCKS):
        lock._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_after_fork)
