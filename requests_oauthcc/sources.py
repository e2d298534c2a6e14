"""Where the client's credentials come from, each kind one value that produces what a token
request sends, read at each token request (never per API request) so that a credential
rotated by the platform is used without a restart.

- :class:`SecretFile`: a client secret in a file;
- :class:`AssertionFile`: a client assertion (a JWT handed out by the platform: a Kubernetes
  projected service-account token, an Entra ID federated token file) in a file, and
  :func:`current_assertion`, the rules every assertion passes before it is sent;
- :class:`PrivateKey`: a ``private_key_jwt`` key with its ``kid``, password and algorithm,
  from text, a file or a callable;
- :class:`CertFiles`: the client certificate files of the mTLS methods.

Files are read again when they change (:mod:`._watch`: one ``stat`` per token request);
callables are called at each token request. Nothing here shows a credential in a message,
a log or a ``repr``.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from ._files import shown_path
from ._peek import expires_at, peek
from ._watch import SETTLE_SECONDS, WatchedFile, file_state
from .errors import ConfigurationError, CredentialError
from .redaction import SensitiveBytes, SensitiveText, hidden

if TYPE_CHECKING:
    from ._jwt import PrivateKeySource, SigningKey

__all__ = [
    "ASSERTION_MIN_REMAINING",
    "AssertionFile",
    "AssertionSource",
    "Cert",
    "CertFiles",
    "CertificateAdapter",
    "PrivateKey",
    "SecretFile",
    "assertion_source",
    "assertion_text",
    "check_cert",
    "current_assertion",
]

logger = logging.getLogger(__name__)

Cert = str | tuple[str, str]
"""A client certificate as requests takes it: a PEM path, or a ``(cert, key)`` pair."""

ASSERTION_MIN_REMAINING = 5.0
"""A client assertion expiring within this many seconds is stale: read again before use."""


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


class SecretFile:
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
        self.path = Path(path)
        self._file = WatchedFile(self.path, "client secret file", _secret_text)

    def __call__(self) -> SensitiveText:
        """The secret now in the file."""
        return self._file.get()

    def check(self) -> None:
        """Raise :class:`ConfigurationError` now if the file cannot give a secret."""
        self._file.check()

    def __reduce__(self) -> tuple[Any, ...]:
        return (SecretFile, (self.path,))

    def __repr__(self) -> str:
        return f"SecretFile({str(self.path)!r})"


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


class AssertionFile:
    """A client assertion read from a file, read again when the file changes.

    For the JWTs platforms write and rotate: a Kubernetes projected service-account token,
    the Entra ID workload identity token file (``AZURE_FEDERATED_TOKEN_FILE``). Callable,
    as ``client_assertion=`` accepts (a plain :class:`os.PathLike` becomes one); each call
    costs a ``stat``. ``repr`` shows the path, never the content.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = WatchedFile(self.path, "client assertion file", assertion_text)

    def __call__(self) -> SensitiveText:
        """The assertion now in the file; :class:`CredentialError` if it cannot be read."""
        return self._file.get()

    def reread(self) -> SensitiveText:
        """The assertion read now, even if the file looks unchanged."""
        return self._file.get(again=True)

    def check(self) -> None:
        """Raise :class:`ConfigurationError` now if the file cannot give an assertion."""
        self._file.check()

    def __reduce__(self) -> tuple[Any, ...]:
        return (AssertionFile, (self.path,))

    def __repr__(self) -> str:
        return f"AssertionFile({str(self.path)!r})"


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
            value = hidden(source())
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


# -- private keys -------------------------------------------------------------------------


class PrivateKey:
    """A ``private_key_jwt`` key (RFC 7523 §2.2) with what goes with it.

    ``source``: a PEM (text or bytes), a private JWK (a dict or its JSON text), a path
    (``str`` or :class:`os.PathLike`) to a file holding either, read again when the file
    changes, or a zero-argument callable returning any of those, called at each token
    request (the key is loaded again only when it returns something different).
    ``key_id``: the ``kid`` header, or a zero-argument callable giving it at each token
    request; default: the JWK's ``kid``. ``password``: for an encrypted PEM, a ``str``,
    ``bytes`` or a zero-argument callable returning one. ``alg``: the JWS algorithm;
    default: the first that fits the key (RS256, ES256/384/512 by curve, EdDSA), chosen
    again for a rotated key of another type.

    :meth:`current` gives the key to sign with now (:class:`CredentialError` if it cannot
    be loaded); :meth:`check` loads it once for the constructor
    (:class:`ConfigurationError`). ``repr`` never shows the key or the password.
    """

    def __init__(self, source: PrivateKeySource | Callable[[], PrivateKeySource], *,
                 key_id: str | Callable[[], str | None] | None = None,
                 password: str | bytes | Callable[[], str | bytes] | None = None,
                 alg: str | None = None) -> None:
        from ._jwt import SigningKey, is_key_path, require_pyjwt

        require_pyjwt()  # first: without the extra, say which to install
        self.source = hidden(source)
        self.key_id = key_id
        self.password = hidden(password)
        self.alg = alg
        self._lock = threading.Lock()
        self._file: WatchedFile[SigningKey] | None = None
        self._static: SigningKey | None = source if isinstance(source, SigningKey) else None
        self._last: tuple[object, SigningKey] | None = None
        if self._static is None and is_key_path(source):
            self._file = WatchedFile(source, "private_key file", self._load)  # type: ignore[arg-type]

    def _load(self, material: object) -> SigningKey:
        from ._jwt import load_signing_key

        password = hidden(self.password() if callable(self.password) else self.password)
        what = "private_key file" if self._file is not None else "private_key"
        return load_signing_key(material if not isinstance(material, bytes)  # type: ignore[arg-type]
                                else SensitiveBytes(material), None, self.alg, what=what,
                                password=password)

    def _key(self, check: bool) -> SigningKey:
        if self._static is not None:
            return self._static
        if self._file is not None:
            return self._file.check() if check else self._file.get()
        if not callable(self.source):
            self._static = self._load(self.source)
            return self._static
        with self._lock:
            material = hidden(self.source())  # a frame of a failed load must not show it
            last = self._last
            if last is not None and last[0] == material:
                return last[1]
            key = self._load(material)
            self._last = (material, key)
            return key

    def current(self) -> SigningKey:
        """The key to sign with now, ``kid`` set. Raises :class:`CredentialError`."""
        try:
            key = self._key(check=False)
        except CredentialError:
            raise
        except ConfigurationError as exc:
            raise CredentialError(str(exc)) from None
        return self._with_kid(key)

    def check(self) -> SigningKey:
        """Load the key now; :class:`ConfigurationError` if it cannot be."""
        return self._with_kid(self._key(check=True))

    def _with_kid(self, key: SigningKey) -> SigningKey:
        from dataclasses import replace

        kid = self.key_id() if callable(self.key_id) else self.key_id
        if kid is not None and not isinstance(kid, str):
            raise CredentialError(f"private_key_id returned {type(kid).__name__}, not a str")
        return key if kid is None or kid == key.kid else replace(key, kid=kid)

    @property
    def rotates(self) -> bool:
        """Whether the key may change: it comes from a file or a callable."""
        return self._file is not None or (self._static is None and callable(self.source))

    def __reduce__(self) -> tuple[Any, ...]:
        source = self.source
        if not self.rotates:
            source = self._key(check=False)  # a copy has the loaded key (its DER), no password
            return (_private_key, (source, self.key_id, None, self.alg))
        return (_private_key, (source, self.key_id, self.password, self.alg))

    def __repr__(self) -> str:
        kind = (f"file {self._file.path!r}" if self._file is not None
                else "callable" if self.rotates else "loaded")
        return f"PrivateKey({kind}, alg={self.alg!r})"


def _private_key(source: Any, key_id: Any, password: Any, alg: str | None) -> PrivateKey:
    return PrivateKey(source, key_id=key_id, password=password, alg=alg)


# -- client certificates ------------------------------------------------------------------


def check_cert(cert: object, name: str = "cert") -> Cert | None:
    """``cert`` as requests takes it, once each file named is known to be readable.

    ``None``, a PEM path (certificate and key in one file), or a ``(cert, key)`` pair of
    paths. Raises :class:`ConfigurationError` for another shape or a file that does not
    exist or cannot be read, so a wrong path fails here and not at every token request.
    """
    if cert is None or cert == "":
        return None
    items: tuple[object, ...] = cert if isinstance(cert, tuple) else (cert,)
    if len(items) not in (1, 2) or not all(isinstance(p, (str, os.PathLike)) for p in items):
        raise ConfigurationError(
            f"{name} must be a PEM file path or a (certificate, key) pair of paths"
        )
    paths = [str(Path(p)) for p in items]  # type: ignore[arg-type]
    for path in paths:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise ConfigurationError(
                f"{name} file {shown_path(path)} does not exist or cannot be read; give the "
                "path of a PEM file"
            )
    return (paths[0], paths[1]) if len(paths) == 2 else paths[0]


class _Encrypted(Exception):
    pass


def _no_password() -> str:
    raise _Encrypted  # never let OpenSSL prompt on the terminal


class CertFiles:
    """The client certificate files (as requests takes them) of the mTLS methods, watched.

    :meth:`changed` (called at each token request) says whether they changed since the
    last call. A pair caught in the middle of a rotation (one file replaced, not yet the
    other) is looked at again, for up to :data:`~requests_oauthcc._watch.SETTLE_SECONDS`,
    until the certificate and the key load together; what still does not load is left to
    the TLS layer to report, as for the first request. ``version`` counts the changes.
    Never raises.
    """

    def __init__(self, cert: Cert) -> None:
        self.cert = cert
        self.paths = cert if isinstance(cert, tuple) else (cert,)
        self.version = 0
        self._states: tuple[object, ...] | None = None
        self._lock = threading.Lock()

    def _now(self) -> tuple[object, ...] | None:
        try:
            return tuple(file_state(path) for path in self.paths)
        except OSError:
            return None

    def changed(self) -> bool:
        with self._lock:
            states = self._now()
            if states == self._states:
                return False
            if self._states is None:  # the first look: nothing to compare with
                self._states = states
                return False
            deadline = time.monotonic() + SETTLE_SECONDS
            while (problem := self._load_problem()) is not None and (
                    time.monotonic() < deadline):
                time.sleep(0.1)
                states = self._now()
            if problem is not None:
                logger.warning("client certificate files changed and %s", problem)
            self._states = states
            self.version += 1
            logger.info("client certificate %s changed; token requests open new connections",
                        self.paths[0])
            return True

    def _load_problem(self) -> str | None:
        """Why the files do not load as a certificate chain and its key, or ``None``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_cert_chain(self.paths[0], self.paths[-1], password=_no_password)
        except _Encrypted:
            return ("its key is encrypted, which requests cannot use: give an unencrypted "
                    "key file (readable by this service only)")
        except (ssl.SSLError, OSError) as exc:
            return (f"{', '.join(map(repr, self.paths))} do not load as a certificate and its "
                    f"private key ({type(exc).__name__}: "
                    f"{getattr(exc, 'reason', None) or 'unreadable'})")
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (CertFiles, (self.cert,))

    def __repr__(self) -> str:
        return f"CertFiles({self.cert!r})"


class CertificateAdapter(requests.adapters.HTTPAdapter):
    """The ``https://`` adapter of ``ClientCredentialsAuth.make_session()`` with a client
    certificate: when the certificate has changed (:attr:`CertFiles.version`, moved on by
    a token request), its pooled connections, opened with the old one, are closed before
    the next send, so that the API sees the certificate the new token is bound to
    (RFC 8705 §3). A version check per request; nothing else."""

    __attrs__ = [*requests.adapters.HTTPAdapter.__attrs__, "cert_files"]  # noqa: RUF012

    def __init__(self, cert_files: CertFiles) -> None:
        super().__init__()
        self.cert_files = cert_files
        self._seen = cert_files.version

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        version = self.cert_files.version
        if version != getattr(self, "_seen", version):
            self.close()
        self._seen = version
        return super().send(request, *args, **kwargs)
