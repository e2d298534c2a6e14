"""A credential file read again when it changes: the one way this package follows a rotated
secret, client assertion, private key or certificate without a restart.

At each use (a token request, never an API request) the file is checked with one
``stat``: its identity (device and inode, which an atomic replace or the kubelet's symlink
swap changes), size, modification and change times. Only a change costs a read. No timer,
no thread: a file that changes between two token requests is read once, by the next.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._files import read_small_file, shown_path
from ._fork import ForkSafeLock
from .errors import ConfigurationError, CredentialError, OAuthError

__all__ = ["RACY_SECONDS", "SETTLE_SECONDS", "WatchedFile", "file_state"]

_T = TypeVar("_T")

SETTLE_SECONDS = 1.0
"""How long (seconds) a changed file that does not parse is read again, every 0.1 s, before
its failure is raised: a writer that truncates and rewrites in place may be caught between
the two (an atomic replace never is)."""

_SETTLE_STEP = 0.1

RACY_SECONDS = 2.0
"""A file modified this recently (seconds) when read may change again unseen: read again."""

FileState = tuple[int, int, int, int, int]


def file_state(path: str | os.PathLike[str]) -> FileState:
    """What tells one version of the file at ``path`` from another: ``(device, inode, size,
    mtime_ns, ctime_ns)``, following symlinks. Raises :class:`OSError`."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class WatchedFile(Generic[_T]):
    """The value parsed from the file at ``path``, read again when the file changes.

    ``parse`` turns the file's bytes into the value. For content it cannot use it raises
    :class:`ValueError` saying what is wrong (``"is empty"``: the message puts ``what``
    and the path before it), or an :class:`OAuthError` with the whole message; neither
    may quote the content. ``what`` names the file (``"client assertion file"``).

    A file modified less than :data:`RACY_SECONDS` before it was read is read again at the
    next use even if it looks unchanged: a rewrite in place within the file system's
    timestamp granularity keeps the size and times (git's "racily clean" entries).

    :meth:`get` raises :class:`~requests_oauthcc.errors.CredentialError` when the file
    cannot be read or parsed at token time; :meth:`check` raises
    :class:`~requests_oauthcc.errors.ConfigurationError` for the same problems, for use
    when the auth is built. Thread-safe. Pickles as its path: a copy reads the file afresh.
    """

    def __init__(self, path: str | os.PathLike[str], what: str,
                 parse: Callable[[bytes], _T]) -> None:
        self.path = str(os.fspath(path))  # plain: a path held as SensitiveText shows as one
        self.what = what
        self._parse = parse
        self._lock = ForkSafeLock()
        self._state: FileState | None = None
        self._value: _T | None = None
        self._racy = False

    def get(self, *, again: bool = False) -> _T:
        """The value of the file as it is now; ``again``: read it even if it looks unchanged.

        Raises :class:`CredentialError`.
        """
        try:
            return self._current(again)
        except CredentialError:
            raise
        except OAuthError as exc:
            raise CredentialError(str(exc)) from None

    def check(self) -> _T:
        """:meth:`get` for the constructor: :class:`ConfigurationError` instead."""
        try:
            return self._current(again=True)
        except ConfigurationError:
            raise
        except OAuthError as exc:
            raise ConfigurationError(str(exc)) from None

    def _current(self, again: bool) -> _T:
        with self._lock:
            settle_until = None
            problem: OAuthError
            unreadable = False
            while True:
                try:
                    state = file_state(self.path)
                    if (not again and not self._racy and state == self._state
                            and self._value is not None):
                        return self._value
                    read_at = time.time_ns()
                    value = self._parse(read_small_file(self.path))
                except OAuthError as exc:  # first: it is an OSError too (requests' base)
                    problem = exc
                except OSError as exc:
                    unreadable = True
                    problem = CredentialError(
                        f"{self.what} {self._shown()} could not be read: "
                        f"{exc.strerror or type(exc).__name__}")
                except ValueError as exc:
                    problem = CredentialError(f"{self.what} {self._shown()} {exc}")
                else:
                    self._state, self._value = state, value
                    self._racy = state[3] >= read_at - int(RACY_SECONDS * 1e9)
                    return value
                # Content caught between a truncate and a write: look again. A file that
                # cannot be opened is not being written (an atomic replace never shows that).
                now = time.monotonic()
                if unreadable or self._value is None or (
                        settle_until is not None and now >= settle_until):
                    raise problem
                settle_until = settle_until or now + SETTLE_SECONDS
                time.sleep(_SETTLE_STEP)

    def _shown(self) -> str:
        """The path for a message: quoted once the file has been read (it is a path), else
        by the rule of :func:`~requests_oauthcc._files.shown_path`."""
        return repr(self.path) if self._value is not None else shown_path(self.path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (WatchedFile, (self.path, self.what, self._parse))

    def __repr__(self) -> str:
        return f"WatchedFile({self.path!r})"
