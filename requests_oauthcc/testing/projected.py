"""A token file written and rotated the way the kubelet writes a projected volume (a
service-account token, or the Entra ID workload identity token file), so that readers
can be tested against the real layout.

The kubelet's ``AtomicWriter`` (``pkg/volume/util/atomic_writer.go``) keeps the data in a
timestamped directory and swaps one symlink::

    <directory>/..2024_05_01_12_00_00.123456/token    the data, written in full first
    <directory>/..data -> ..2024_05_01_12_00_00.123456
    <directory>/token -> ..data/token                  the path applications read

A rotation writes a new timestamped directory, points a temporary symlink
(``..data_tmp``) at it and renames that over ``..data`` (``rename(2)`` is atomic), then
removes the old directory. A reader opening ``<directory>/token`` sees the old file or the
new one, whole, never a missing or partial file.

One difference: the kubelet removes the replaced directory at once. That leaves a race
(an ``open()`` that resolved ``..data`` just before a swap, then was preempted, misses the
file) which the kubelet, rotating hourly, never meets, but a test rotating in a tight loop
on a loaded machine does. Here a replaced directory is removed by the first rotation at
least ``grace`` seconds later (``grace=0``: at once, as the kubelet does).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

__all__ = ["ProjectedToken"]

_DATA = "..data"
_DATA_TMP = "..data_tmp"


class ProjectedToken:
    """A kubelet-style projected token file (see the module docstring).

    ``directory``: the volume's mount point, created if missing. ``mint``: called for
    each new token (the first one is written by the constructor). ``filename``: the file
    applications read (``token`` for Kubernetes, ``azure-identity-token`` for Entra ID
    workload identity). ``mode``: the data file's permissions. ``grace``: seconds a
    replaced data directory is kept (see the module docstring).

    ``path``: ``<directory>/<filename>``, the path to hand to the client. ``rotations``:
    how many times :meth:`rotate` ran. The ``repr`` shows the path, never the token.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        mint: Callable[[], str],
        *,
        filename: str = "token",
        mode: int = 0o600,
        grace: float = 1.0,
    ) -> None:
        if not filename or "/" in filename or filename.startswith(".."):
            raise ValueError("filename must be a plain file name")
        self.directory = Path(directory)
        self.filename = filename
        self.path = self.directory / filename
        self.mode = mode
        self.grace = grace
        self.rotations = 0
        self._mint = mint
        self._lock = threading.Lock()
        self._replaced: deque[tuple[str, float]] = deque()  # (directory, when), oldest first
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write(mint())

    def __repr__(self) -> str:
        return f"ProjectedToken(path={str(self.path)!r}, rotations={self.rotations})"

    def read(self) -> str:
        """The token as a reader sees it now."""
        return self.path.read_text(encoding="utf-8")

    def rotate(self, token: str | None = None) -> str:
        """Write a new token (``token``, or a freshly minted one) atomically; returns it."""
        new = self._mint() if token is None else token
        with self._lock:
            self._write(new)
            self.rotations += 1
        return new

    def _write(self, token: str) -> None:
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        data_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=self.directory))
        data_dir.chmod(0o755)
        target = data_dir / self.filename
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(token)
        data_link = self.directory / _DATA
        current = os.readlink(data_link) if data_link.is_symlink() else None
        temporary = self.directory / _DATA_TMP
        if temporary.is_symlink():
            temporary.unlink()  # left by an interrupted rotation
        os.symlink(data_dir.name, temporary)
        os.rename(temporary, data_link)  # the atomic swap
        if not os.path.lexists(self.path):
            os.symlink(f"{_DATA}/{self.filename}", self.path)
        now = time.monotonic()
        if current is not None:
            self._replaced.append((current, now))
        while self._replaced and self._replaced[0][1] <= now - self.grace:
            shutil.rmtree(self.directory / self._replaced.popleft()[0], ignore_errors=True)
