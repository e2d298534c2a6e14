"""Where the client's secret and assertion come from: values read at each token request
(never per API request), so that a credential rotated by the platform is used without a
restart, and :func:`ask`, the one way a user's callable is called.

- :class:`SecretFile`: a client secret in a file;
- :class:`AssertionFile`: a client assertion (a JWT handed out by the platform: a Kubernetes
  projected service-account token, an Entra ID federated token file) in a file, and
  :func:`current_assertion`, the rules every assertion passes before it is sent.

Private keys are :mod:`.private_keys`, client certificates :mod:`.certificates`. Files are
read again when they change (:mod:`._watch`: one ``stat`` per token request); callables are
called at each token request. Nothing here shows a credential in a message, a log or a
``repr``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ._peek import expires_at, peek
from ._watch import WatchedFile
from .errors import ConfigurationError, CredentialError, OAuthError
from .redaction import SensitiveText, hidden

__all__ = [
    "ASSERTION_MIN_REMAINING",
    "AssertionFile",
    "AssertionSource",
    "SecretFile",
    "ask",
    "assertion_source",
    "assertion_text",
    "current_assertion",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

ASSERTION_MIN_REMAINING = 5.0
"""A client assertion expiring within this many seconds is stale: read again before use."""


def ask(source: Callable[[], _T], what: str) -> _T:
    """What the user's zero-argument callable ``source`` gives now.

    Whatever it raises besides this package's own errors (a vault client's, a ``KeyError``)
    becomes a :class:`CredentialError` naming ``what`` and the exception type, chained: a
    failure of the fetch, which the token holder treats as such (a token still valid stays
    in use), not an unknown exception escaping from an API call.
    """
    try:
        return source()
    except OAuthError:
        raise
    except Exception as exc:
        raise CredentialError(f"{what} raised {type(exc).__name__}") from exc


class _CredentialFile:
    """A credential read from the file at ``path`` by the watched-file rule
    (:class:`~requests_oauthcc._watch.WatchedFile`): callable, each call (one per token
    request) costing a ``stat`` and a read only when the file is new or changed. Pickles
    as its path; ``repr`` shows the path, never the content."""

    def __init__(self, path: str | os.PathLike[str], what: str,
                 parse: Callable[[bytes], SensitiveText]) -> None:
        self.path = Path(path)
        self._file = WatchedFile(self.path, what, parse)

    def __call__(self) -> SensitiveText:
        """The credential now in the file; :class:`CredentialError` if it cannot be had."""
        return self._file.get()

    def check(self) -> None:
        """Raise :class:`ConfigurationError` now if the file cannot give the credential."""
        self._file.check()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


# -- secrets ------------------------------------------------------------------------------


def _secret_text(data: bytes) -> SensitiveText:
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text; write the secret as text (a trailing newline "
                         "is fine)") from None
    if not text:
        raise ValueError("is empty; write the secret in it")
    return SensitiveText(text)


class SecretFile(_CredentialFile):
    """A client secret read from a file, and read again when the file changes (rotation).

    Surrounding whitespace (the usual trailing newline) is stripped. Callable, as
    ``client_secret=`` accepts: each call (one per token request) costs a ``stat``; the
    file is read when it is new or changed. ``repr`` shows the path, never the content.
    A file that cannot be read, is not a regular file (a FIFO would block, ``/dev/zero``
    never end), is larger than 64 KiB, is not UTF-8 text, or is empty raises
    :class:`CredentialError` (:class:`ConfigurationError` from :meth:`check`, which the
    constructor calls).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, "client secret file", _secret_text)


# -- client assertions --------------------------------------------------------------------

AssertionSource = Callable[[], str] | os.PathLike[str]
"""What ``client_assertion=`` takes: a zero-argument callable returning the assertion, or
a path (:class:`os.PathLike`) of a file holding it."""

_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def assertion_text(data: bytes | str) -> SensitiveText:
    """The assertion in ``data``, once it looks like a JWT (RFC 7523 §2.2) that says when
    it expires; ``ValueError`` saying what is wrong, never quoting it."""
    try:  # hidden: no local of a frame left in a traceback (not a JWT) shows it
        text = hidden((data.decode("ascii") if isinstance(data, bytes) else data).strip())
    except UnicodeDecodeError:
        raise ValueError("is not a JWT (it holds non-ASCII bytes)") from None
    if not text:
        raise ValueError("is empty: the platform has not written the assertion yet")
    if not _JWS_COMPACT.fullmatch(text):
        raise ValueError("is not a JWT (three base64url parts joined by dots)")
    try:
        expires_at(peek(text)[1])
    except ValueError as exc:
        raise ValueError(f"is not a usable JWT: {exc}") from None
    return SensitiveText(text)


class AssertionFile(_CredentialFile):
    """A client assertion read from a file, read again when the file changes.

    For the JWTs platforms write and rotate: a Kubernetes projected service-account token,
    the Entra ID workload identity token file (``AZURE_FEDERATED_TOKEN_FILE``). Callable,
    as ``client_assertion=`` accepts (a plain :class:`os.PathLike` becomes one); each call
    costs a ``stat``. ``repr`` shows the path, never the content.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, "client assertion file", assertion_text)

    def reread(self) -> SensitiveText:
        """The assertion read now, even if the file looks unchanged."""
        return self._file.get(again=True)


def assertion_source(value: object) -> Callable[[], str]:
    """``client_assertion=`` as a callable: a path becomes an :class:`AssertionFile`
    (checked now); a callable is kept. :class:`ConfigurationError` for anything else (a
    string: the assertion itself would not rotate, and a path string is ambiguous)."""
    if isinstance(value, os.PathLike):
        value = AssertionFile(value)
    if isinstance(value, AssertionFile):
        value.check()
        return value
    if callable(value):
        return value
    raise ConfigurationError(
        "client_assertion must be a zero-argument callable returning the assertion, or a "
        f"pathlib.Path of the file holding it; got {type(value).__name__} (a fixed "
        "assertion string would expire: give its file or a function that fetches it)")


def current_assertion(source: Callable[[], str], clock: Callable[[], float] = time.time,
                      ) -> SensitiveText:
    """The assertion to send now (RFC 7521 §4.2): from ``source``, checked to be a JWT, and
    read again (the file) or asked again (a callable) when its ``exp`` has passed or passes
    within :data:`ASSERTION_MIN_REMAINING` seconds.

    Raises :class:`CredentialError` for an assertion that cannot be had, is not a JWT, or
    is still stale after the second look: the platform did not rotate it.
    """
    where = repr(source) if isinstance(source, AssertionFile) else "client_assertion callable"
    for look in (1, 2):
        if look == 2 and isinstance(source, AssertionFile):
            value: object = hidden(source.reread())
        else:
            value = hidden(ask(source, "the client_assertion callable"))
        problem = None
        try:
            if not isinstance(value, str):
                raise ValueError(f"returned {type(value).__name__}, not the assertion text")
            text = assertion_text(value)
            exp = expires_at(peek(text)[1])
        except ValueError as exc:
            problem = str(exc)
        if problem is not None:  # raised here: no __context__ keeps the parsers' frames
            raise CredentialError(f"the client assertion from {where} {problem}")
        remaining = None if exp is None else exp - clock()
        if remaining is None or remaining > ASSERTION_MIN_REMAINING:
            return text
        logger.debug("client assertion from %s expires in %.0fs; reading it again",
                     where, remaining)
    assert remaining is not None
    raise CredentialError(
        f"the client assertion from {where} "
        + (f"expired {-remaining:.0f}s ago" if remaining < 0 else
           f"expires in {remaining:.0f}s") +
        ", and reading it again gave no newer one: the platform did not rotate it (check "
        "the token volume or the workload identity setup); it was not sent")
