"""A token cache in a directory, shared by the processes of one host (POSIX)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from .cache import CacheEntry, CacheError, Lease
from .errors import ConfigurationError

__all__ = ["FileTokenCache"]

logger = logging.getLogger(__name__)


def _fcntl() -> ModuleType:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise ConfigurationError(
            "FileTokenCache needs POSIX file locks (fcntl); use RedisTokenCache here"
        ) from None
    return fcntl


class _FileLease:
    def __init__(self, fd: int, fcntl: ModuleType) -> None:
        self._fd: int | None = fd
        self._fcntl = fcntl

    def release(self) -> None:
        if self._fd is not None:
            self._fcntl.flock(self._fd, self._fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class FileTokenCache:
    """Tokens kept as files in ``directory``, one per cache key, for one host's processes.

    Writes are atomic (a temporary file renamed over the old one) and made under a file
    lock; files are created with mode 0600 and a new directory with 0700. The fetch lease
    is an exclusive ``flock``: the kernel releases it when its holder dies, so a killed
    fetcher is replaced at once. A corrupt or truncated file is a miss (and logged).
    ``lease_ttl`` bounds how long others wait for a live holder (then they fetch directly).
    """

    def __init__(self, directory: str | os.PathLike[str], *, lease_ttl: float = 30.0) -> None:
        self._fcntl = _fcntl()
        self.directory = Path(directory)
        self.lease_ttl = lease_ttl
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"FileTokenCache directory {str(self.directory)!r} cannot be created: "
                f"{exc.strerror}"
            ) from None

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{key}{suffix}"

    def get(self, key: str) -> CacheEntry | None:
        path = self._path(key, ".json")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            data: Any = json.loads(text)
            expires_at = data["expires_at"]
            entry = CacheEntry(str(data["fingerprint"]), str(data["payload"]))
            if expires_at is not None and float(expires_at) <= time.time():
                return None
        except (ValueError, TypeError, KeyError):
            logger.warning("token cache file %s is corrupt; treated as a miss", path)
            return None
        return entry

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        record = {
            "fingerprint": entry.fingerprint,
            "payload": entry.payload,
            "expires_at": None if math.isinf(ttl) else time.time() + ttl,
        }
        with self._locked(key):
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    json.dump(record, file)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temp, self._path(key, ".json"))
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise CacheError(f"cannot write the token file: {exc.strerror}") from exc

    def delete(self, key: str, fingerprint: str) -> None:
        with self._locked(key):
            entry = self.get(key)
            if entry is not None and entry.fingerprint == fingerprint:
                with contextlib.suppress(FileNotFoundError):
                    self._path(key, ".json").unlink()

    def lease(self, key: str) -> Lease | None:
        fd = self._open(self._path(key, ".lease"))
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise CacheError(f"cannot lock the lease file: {exc.strerror}") from exc
        return _FileLease(fd, self._fcntl)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        fd = self._open(self._path(key, ".lock"))
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CacheError(f"cannot open {path}: {exc.strerror}") from exc

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.directory)!r})"
