"""A ``private_key_jwt`` key as one value: the key (text, a file read again when it
changes, or a callable), its ``kid``, its password and its algorithm (RFC 7523 §2.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._fork import ForkSafeLock
from ._watch import WatchedFile
from .errors import ConfigurationError, CredentialError
from .redaction import SensitiveBytes, hidden
from .sources import ask

if TYPE_CHECKING:
    from ._jwt import PrivateKeySource, SigningKey

__all__ = ["PrivateKey"]


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
        self._lock = ForkSafeLock()
        self._file: WatchedFile[SigningKey] | None = None
        self._static: SigningKey | None = source if isinstance(source, SigningKey) else None
        self._last: tuple[object, SigningKey] | None = None
        if self._static is None and is_key_path(source):
            self._file = WatchedFile(source, "private_key file", self._load)

    def _load(self, material: object) -> SigningKey:
        from ._jwt import load_signing_key

        password = hidden(ask(self.password, "the private_key_password callable")
                          if callable(self.password) else self.password)
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
            material = hidden(ask(self.source, "the private_key callable"))  # no frame shows it
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
        try:
            return self._with_kid(self._key(check=True))
        except CredentialError as exc:  # a callable failed: at construction, configuration
            raise ConfigurationError(str(exc)) from exc

    def _with_kid(self, key: SigningKey) -> SigningKey:
        from dataclasses import replace

        kid = ask(self.key_id, "the private_key_id callable") if callable(
            self.key_id) else self.key_id
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
