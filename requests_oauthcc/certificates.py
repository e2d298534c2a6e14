"""Client certificates of the mTLS methods (RFC 8705): the files as requests takes them,
checked when the auth is built and watched at each token request, and the adapter that
stops connections opened with an old certificate from being used again."""

from __future__ import annotations

import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

import requests

from ._files import shown_path
from ._fork import ForkSafeLock
from ._watch import SETTLE_SECONDS, file_state
from .errors import ConfigurationError

__all__ = ["Cert", "CertFiles", "CertWatch", "CertificateAdapter", "check_cert"]

logger = logging.getLogger(__name__)

Cert = str | tuple[str, str]
"""A client certificate as requests takes it: a PEM path, or a ``(cert, key)`` pair."""


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

    :meth:`look` (at each token request, and by :class:`CertificateAdapter` for each new
    token) looks at the files and gives :attr:`version`, which moves on each time they
    are found changed since the last look, or since the auth was built. Each user of the
    connections keeps its own :class:`CertWatch`, so that one noticing the change first
    does not hide it from the others. A pair caught in the middle of a rotation (one file
    replaced, not yet the other) is looked at again, for up to
    :data:`~requests_oauthcc._watch.SETTLE_SECONDS`, until the certificate and the key load
    together; what still does not load is left to the TLS layer to report, as for the
    first request. Never raises.
    """

    def __init__(self, cert: Cert) -> None:
        self.cert = cert
        self.paths = cert if isinstance(cert, tuple) else (cert,)
        self.version = 0
        self._lock = ForkSafeLock()
        self._states: tuple[object, ...] | None = self._now()  # the files the auth was built with

    def _now(self) -> tuple[object, ...] | None:
        try:
            return tuple(file_state(path) for path in self.paths)
        except OSError:
            return None

    def look(self) -> int:
        """The :attr:`version` of the files now (a ``stat`` each; on a change, a load)."""
        with self._lock:
            states = self._now()
            if states == self._states:
                return self.version
            deadline = time.monotonic() + SETTLE_SECONDS
            while (problem := self._load_problem()) is not None and (
                    time.monotonic() < deadline):
                time.sleep(0.1)
                states = self._now()
            if problem is not None:
                logger.warning("client certificate files changed and %s", problem)
            self._states = states
            self.version += 1
            logger.info("client certificate %s changed; connections opened with the old one "
                        "are closed", self.paths[0])
            return self.version

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


class CertWatch:
    """One user's view of :class:`CertFiles`: whether the connections it keeps were
    opened with an older certificate than the files now hold."""

    def __init__(self, files: CertFiles) -> None:
        self.files = files
        self._seen = files.version

    def outdated(self, *, look: bool = True) -> bool:
        """Whether the certificate changed since this user last asked; ``look``: look at
        the files (a ``stat``) rather than at what another user last found."""
        version = self.files.look() if look else self.files.version
        outdated, self._seen = version != self._seen, version
        return outdated

    def __reduce__(self) -> tuple[Any, ...]:
        return (CertWatch, (self.files,))


class CertificateAdapter(requests.adapters.HTTPAdapter):
    """The ``https://`` adapter of ``ClientCredentialsAuth.make_session()`` with a client
    certificate: when the certificate has changed, its pooled connections, opened with the
    old one, are closed before the next send, so that the API sees the certificate the new
    token is bound to (RFC 8705 §3).

    The files are looked at (:meth:`CertFiles.look`) when a request carries a token
    this adapter has not sent before: a token from a shared cache, fetched by another
    process over the new certificate, counts as much as one this process fetched. Per
    request, an identity check of the ``Authorization`` value and of
    :attr:`CertFiles.version`; nothing else."""

    __attrs__ = [*requests.adapters.HTTPAdapter.__attrs__, "cert_files"]  # noqa: RUF012

    def __init__(self, cert_files: CertFiles) -> None:
        super().__init__()
        self.cert_files = cert_files
        self._watch = CertWatch(cert_files)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if not hasattr(self, "_watch"):  # unpickled: requests restores __attrs__ only
            self._watch = CertWatch(self.cert_files)
        authorization = request.headers.get("Authorization")
        new_token = authorization is not getattr(self, "_token", None)
        self._token = authorization
        if self._watch.outdated(look=new_token):
            self.close()
        return super().send(request, *args, **kwargs)
