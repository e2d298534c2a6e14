"""The small files that hold credentials (secrets, keys): reading them, and naming them in
messages without ever showing a credential.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .redaction import SensitiveBytes

__all__ = ["MAX_CREDENTIAL_FILE_BYTES", "read_small_file", "shown_path"]

MAX_CREDENTIAL_FILE_BYTES = 64 * 1024
"""A secret or key file larger than this (64 KiB) is refused unread."""


def read_small_file(path: str | os.PathLike[str],
                    limit: int = MAX_CREDENTIAL_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Raises :class:`OSError` (``strerror`` says why) for anything else: a FIFO or a device
    is refused without blocking on it (``O_NONBLOCK``), a larger file is refused."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = os.read(fd, limit + 1)
        while len(data) <= limit:
            more = os.read(fd, limit + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return SensitiveBytes(data)


def shown_path(path: object) -> str:
    """``path`` as a message may show it: quoted when something exists there, else not.

    A value given where a path belongs (``OAUTH_CLIENT_SECRET_FILE``, ``--dpop-key``,
    ``private_key=``) is often the credential itself: the secret, a PEM, a JWK. A path to
    nothing is therefore never quoted: the message says so and names where it came from.
    """
    try:
        exists = os.path.lexists(Path(path))  # type: ignore[arg-type]
    except (TypeError, ValueError, OSError):
        exists = False
    if exists:
        return repr(str(path))
    return "(a path to no file; not shown, as it may be a credential given by mistake)"
