"""The constructor's arguments, checked: each one that cannot work is a
:class:`~requests_oauthcc.errors.ConfigurationError` when the auth is built, saying what to
fix, instead of a failure at every token request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ._observers import Observers
from ._urls import clear_text_reason, origin, sends_in_clear
from .errors import ConfigurationError, InsecureTransportError
from .form import check_text

if TYPE_CHECKING:  # the rest is imported where used: options not given cost nothing
    from ._proofs import Proofs
    from .certificates import Cert
    from .client_auth import SecretSource
    from .private_keys import PrivateKey
    from .transport import Timeout

__all__ = [
    "Options",
    "check_client_id",
    "check_dpop",
    "check_files",
    "check_on_event",
    "check_origins",
    "check_private_key",
    "check_seconds",
    "check_timeout",
    "check_transport",
    "check_url",
    "replayable",
    "replayable_params",
]


class Options(dict[str, Any]):
    """The constructor's options, kept to build copies; its repr shows only the names."""

    def __repr__(self) -> str:
        return f"<ClientCredentialsAuth options: {', '.join(self)}>"


def replayable(value: Any) -> Any:
    """``value``, or a tuple of its items when it is a one-shot iterator (a generator)."""
    return tuple(value) if isinstance(value, Iterator) else value


def replayable_params(params: Any) -> Any:
    if not isinstance(params, Mapping):
        return params  # None, or a wrong type that grant_parameters reports
    return {name: replayable(value) for name, value in params.items()}


def check_transport(
    name: str, url: str, session: object, allow_http: bool
) -> None:
    """The token URL (or issuer) must not send the secret in the clear (:func:`sends_in_clear`)."""
    if session is not None and not isinstance(session, requests.Session):
        raise ConfigurationError("session must be a requests.Session (used for token requests)")
    if not allow_http and sends_in_clear(url, session):
        raise InsecureTransportError(
            f"refusing {name} {url!r}: the client secret and the token would cross the "
            f"network in the clear: {clear_text_reason(url)} (or insecure_allow_http=True, "
            "for test rigs only)"
        )


def check_files(
    cert: object, session: requests.Session, secret: SecretSource | None
) -> Cert | None:
    """Files named by the options must be readable now, not fail every token request:
    ``cert``, the token Session's ``cert`` and ``verify``, a :class:`SecretFile`."""
    if callable(secret):  # a plain secret is held as a Secret, which is not
        from .sources import SecretFile

        if isinstance(secret, SecretFile):
            secret.check()
    if _given(session.cert):
        from .certificates import check_cert

        check_cert(session.cert, "session.cert")
    verify = session.verify
    if isinstance(verify, str) and not os.access(verify, os.R_OK):
        from ._files import shown_path

        raise ConfigurationError(
            f"session.verify names {shown_path(verify)}, which does not exist or cannot be "
            "read; give the path of a CA bundle (PEM) or a directory of CA certificates"
        )
    if not _given(cert):
        return None
    from .certificates import check_cert

    return check_cert(cert)


def _given(cert: object) -> bool:
    """Whether a ``cert`` option names something (:func:`check_cert` takes ``None`` and
    ``""`` for nothing)."""
    return cert is not None and not (isinstance(cert, str) and cert == "")


def check_url(name: str, url: object) -> None:
    """An http(s) URL with a host and no user info (which logs and messages would show)."""
    shown = repr(url) if not isinstance(url, str) or "@" not in url else "(a URL with user info)"
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise ConfigurationError(f"{name} must be an http(s) URL string; got {shown}")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise ConfigurationError(f"{name} is not a valid URL: {shown}") from None
    if parsed.auth is not None:
        raise ConfigurationError(
            f"{name} must not hold user info (user:password@): it would show in logs and "
            "messages; give credentials as client_id and client_secret"
        )
    if not parsed.host:
        raise ConfigurationError(f"{name} must name a host; got {shown}")


def check_seconds(name: str, value: object, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (allow_none and value == 0)
    ):
        raise ConfigurationError(f"{name} must be a non-negative number of seconds; got {value!r}")
    return float(value)


def check_timeout(timeout: object) -> Timeout:
    """A positive number of seconds, or a ``(connect, read)`` pair of them."""
    parts = timeout if isinstance(timeout, tuple) and len(timeout) == 2 else (timeout,)
    checked = [check_seconds("timeout", part) for part in parts]
    if not all(checked):
        raise ConfigurationError(
            "timeout must be positive seconds, or a (connect, read) pair of them (token "
            f"requests always have one); got {timeout!r}"
        )
    return (checked[0], checked[1]) if len(checked) == 2 else checked[0]


def check_origins(origins: Iterable[str]) -> frozenset[str]:
    if isinstance(origins, str):
        origins = [origins]
    checked = set()
    for value in origins:
        check_url("allowed_origins entry", value)
        parsed = parse_url(value)
        if parsed.path not in (None, "", "/") or parsed.query is not None or (
                parsed.fragment is not None):
            raise ConfigurationError(
                f"allowed_origins entry {value!r} must be scheme://host[:port] only: an "
                "origin has no path or query, and the token goes to every path of it"
            )
        checked.add(origin(value))
    return frozenset(checked)


def check_dpop(dpop: object) -> Proofs | None:
    """The DPoP proofs of an auth built with ``dpop=``, which takes a
    :class:`~requests_oauthcc.DPoPKey`; :class:`ConfigurationError` for anything else."""
    if dpop is None:
        return None
    from .dpop import DPoPKey

    if not isinstance(dpop, DPoPKey):
        raise ConfigurationError(
            f"dpop must be a DPoPKey (DPoPKey.generate() or DPoPKey.load(pem_or_jwk)), not "
            f"{type(dpop).__name__}")
    from ._proofs import Proofs

    return Proofs(dpop)


def check_statuses(name: str, statuses: object) -> frozenset[int]:
    """``statuses`` as the set of API statuses that mean "fetch a new token and retry".

    401 (RFC 6750 §3.1: the status of a rejected token) and, optionally, 403 (APIs that
    answer a dead token with it). Any other status says nothing certain about the token,
    and resending on it could repeat a request the server acted on (400, 409) or fight a
    rate limit (429). Raises :class:`ConfigurationError`.
    """
    if isinstance(statuses, (str, bytes, int)) or not isinstance(statuses, Iterable):
        raise ConfigurationError(f"{name} must be a collection of HTTP statuses, e.g. (401, 403)")
    checked = frozenset(statuses)
    bad = sorted(repr(s)[:20] for s in checked
                 if isinstance(s, bool) or not isinstance(s, int) or s not in (401, 403))
    if bad:
        raise ConfigurationError(
            f"{name} may name 401 and 403 only (got {', '.join(bad)}): another status says "
            "nothing certain about the token, and resending on it could repeat a request "
            "the server acted on")
    if 401 not in checked:
        raise ConfigurationError(
            f"{name} must include 401, the status of a rejected token (RFC 6750 §3.1): "
            "use (401, 403)")
    return checked


def check_on_event(on_event: object) -> Observers:
    """The listeners of one auth: ``on_event`` (a callable taking one event, or ``None``)
    and, once instrumented, the telemetry. Raises :class:`ConfigurationError`."""
    if on_event is not None and not callable(on_event):
        raise ConfigurationError(
            f"on_event must be a callable taking one event, not {type(on_event).__name__}")
    return Observers(on_event)


def check_client_id(client_id: object, has_assertion: bool, shared: bool) -> None:
    """A non-empty string without control characters; ``None`` only with a client
    assertion that names the client, and then not with a shared cache (whose key needs it)."""
    if client_id is None and has_assertion:
        if shared:
            raise ConfigurationError(
                "a shared cache needs client_id= to name the client in its keys; give the "
                "client_id the assertion stands for")
        return
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError("client_id must be a non-empty string")
    check_text("client_id", client_id)


def check_private_key(
    private_key: object, key_id: object, password: object, alg: object, assertion: object,
) -> PrivateKey | None:
    """The ``private_key`` options as one :class:`~requests_oauthcc.PrivateKey`, loaded once
    now (:class:`ConfigurationError` if it cannot be), or ``None`` without a key."""
    if private_key is None:
        if key_id is not None or password is not None:
            raise ConfigurationError(
                "private_key_id and private_key_password go with private_key=; give the key")
        return None
    if assertion is not None:
        raise ConfigurationError(
            "give private_key= (to sign client assertions) or client_assertion= (an "
            "assertion made elsewhere), not both")
    from .private_keys import PrivateKey

    if isinstance(private_key, PrivateKey):
        if key_id is not None or password is not None:
            raise ConfigurationError(
                "private_key is a PrivateKey: give its key_id and password to PrivateKey(), "
                "not as private_key_id= or private_key_password=")
        if alg is not None and private_key.alg not in (None, alg):
            raise ConfigurationError(
                f"signing_alg {alg!r} differs from the PrivateKey's alg {private_key.alg!r}; "
                "give one")
        key = private_key if alg is None or private_key.alg == alg else PrivateKey(
            private_key.source, key_id=private_key.key_id, password=private_key.password,
            alg=alg)  # type: ignore[arg-type]
    else:
        key = PrivateKey(private_key, key_id=key_id, password=password,  # type: ignore[arg-type]
                         alg=alg)  # type: ignore[arg-type]
    key.check()
    return key
