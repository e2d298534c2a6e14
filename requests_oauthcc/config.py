"""Configuration from environment variables, for ``ClientCredentialsAuth.from_env``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import shown_path
from .discovery import Issuer
from .errors import ConfigurationError
from .redaction import Secret
from .sources import SecretFile

if TYPE_CHECKING:
    from .dpop import DPoPKey

__all__ = ["environment_options", "load_dpop_key"]

logger = logging.getLogger(__name__)


def environment_options(
    prefix: str, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Constructor arguments from ``{prefix}*`` variables; ``overrides`` win over them."""
    options = {**_read(prefix, environ, dpop="dpop" not in overrides), **overrides}
    if "token_url" not in options:
        raise ConfigurationError(f"{prefix}TOKEN_URL or {prefix}ISSUER must be set")
    if "client_id" not in options:
        raise ConfigurationError(f"{prefix}CLIENT_ID must be set")
    if not any(options.get(k) for k in ("client_secret", "private_key", "client_assertion",
                                        "cert", "session")):
        raise ConfigurationError(
            f"no client credentials: set {prefix}CLIENT_SECRET, {prefix}CLIENT_SECRET_FILE, "
            f"{prefix}PRIVATE_KEY_FILE or {prefix}CLIENT_ASSERTION_FILE"
        )
    return options


def _read(prefix: str, environ: Mapping[str, str], *, dpop: bool) -> dict[str, Any]:
    def get(name: str) -> str | None:
        value = environ.get(prefix + name, "").strip()
        return value or None

    def conflict(a: str, b: str) -> ConfigurationError:
        return ConfigurationError(f"set {prefix}{a} or {prefix}{b}, not both")

    options: dict[str, Any] = {}
    token_url, issuer = get("TOKEN_URL"), get("ISSUER")
    if token_url and issuer:
        raise conflict("TOKEN_URL", "ISSUER")
    if token_url or issuer:
        options["token_url"] = token_url or Issuer(issuer or "")
    client_id = get("CLIENT_ID")
    if client_id:
        options["client_id"] = client_id
    options.update(_credentials(prefix, get, conflict))
    for name in ("SCOPE", "AUDIENCE", "AUTH_METHOD"):
        value = get(name)
        if value:
            options[name.lower()] = value
    resource = get("RESOURCE")
    if resource:
        options["resource"] = resource.split()
    options.update(_switches(prefix, get))
    if dpop:  # not when dpop= is given: the key file is then not even read
        options.update(_dpop(prefix, get, prefix + "DPOP_KEY_FILE" in environ))
    return options


def _credentials(prefix: str, get: Callable[[str], str | None],
                 conflict: Callable[[str, str], ConfigurationError]) -> dict[str, Any]:
    """``client_secret``, ``private_key`` and ``client_assertion`` from their variables."""
    options: dict[str, Any] = {}
    secret, secret_file = get("CLIENT_SECRET"), get("CLIENT_SECRET_FILE")
    if secret and secret_file:
        raise conflict("CLIENT_SECRET", "CLIENT_SECRET_FILE")
    if secret_file:
        options["client_secret"] = SecretFile(_file(prefix, "CLIENT_SECRET_FILE", secret_file,
                                                    "the secret"))
    elif secret:
        options["client_secret"] = Secret(secret)
    key_file, assertion_file = get("PRIVATE_KEY_FILE"), get("CLIENT_ASSERTION_FILE")
    if key_file and assertion_file:
        raise conflict("PRIVATE_KEY_FILE", "CLIENT_ASSERTION_FILE")
    if key_file:
        options["private_key"] = Path(key_file)
        password = get("PRIVATE_KEY_PASSWORD")
        if password:
            options["private_key_password"] = password
    if assertion_file:
        options["client_assertion"] = Path(_file(
            prefix, "CLIENT_ASSERTION_FILE", assertion_file,
            "the assertion (a Kubernetes service-account token, a federated token file)"))
    return options


def _file(prefix: str, name: str, path: str, holding: str) -> str:
    """``path`` once it names a regular file. ``os.path.isfile`` answers False, never an
    ``OSError`` quoting the value, which may be the credential itself set by mistake."""
    if not os.path.isfile(path):
        raise ConfigurationError(
            f"{prefix}{name} names {shown_path(path)}, which is not a readable file; it "
            f"must be the path of a file holding {holding}")
    return path


def _dpop(prefix: str, get: Callable[[str], str | None], present: bool) -> dict[str, Any]:
    """``dpop`` from ``DPOP_KEY_FILE`` and ``DPOP_ALG``, when set. ``present``: whether the
    key file variable exists; set but blank, it is an error, not "no DPoP": a failed
    substitution in a deployment must not quietly drop the binding to the key."""
    key_file, alg = get("DPOP_KEY_FILE"), get("DPOP_ALG")
    if key_file is None and present:
        raise ConfigurationError(f"{prefix}DPOP_KEY_FILE is set but empty: give the path of "
                                 "a DPoP key file, or unset it")
    if key_file is None:
        if alg is not None:
            raise ConfigurationError(
                f"{prefix}DPOP_ALG is set but {prefix}DPOP_KEY_FILE is not: set the key file")
        return {}
    return {"dpop": load_dpop_key(key_file, alg, source=f"{prefix}DPOP_KEY_FILE",
                                  alg_source=f"{prefix}DPOP_ALG")}


def load_dpop_key(
    path: str, alg: str | None = None, *, source: str = "DPoP key file",
    alg_source: str = "alg",
) -> DPoPKey:
    """The DPoP key in the file at ``path``, loaded with :meth:`DPoPKey.load`.

    The file holds a PEM private key (PKCS #8 or traditional, unencrypted) or a private
    JWK as JSON (a JWK Set of one key too). ``alg`` picks among the key's algorithms
    (default: the JWK's ``alg``, else the key's first). ``source`` and ``alg_source`` name
    where the path and ``alg`` came from (a variable, a flag) in error messages.

    Raises :class:`~requests_oauthcc.ConfigurationError`, one line naming ``source`` and
    what is wrong, never the key (nor a path to no file, which may be the key itself):
    empty, unreadable, not a regular file, over 64 KiB, a public key, an encrypted PEM,
    invalid JSON, an algorithm the key cannot sign. Logs the key's algorithm and RFC 7638
    thumbprint at INFO (what ``-v`` shows).
    """
    from .dpop import DPoPKey

    if not path:
        raise ConfigurationError(f"{source} is empty: give the path of a DPoP key file")
    try:
        key = DPoPKey.load(Path(path))
    except ConfigurationError as exc:
        named = f" ({shown_path(path)})" if os.path.lexists(path) else ""
        raise ConfigurationError(f"{source}{named}: {exc}") from None
    if alg is not None:
        if alg not in key.algs:
            raise ConfigurationError(
                f"{alg_source} {alg!r} does not fit the key of {source}; it can sign: "
                f"{', '.join(key.algs)}")
        key = key.with_alg(alg)
    logger.info("DPoP key from %s: %s, RFC 7638 thumbprint %s", source, key.alg,
                key.thumbprint)
    return key


def _switches(prefix: str, get: Callable[[str], str | None]) -> dict[str, Any]:
    """``client_id_in_body`` and ``refresh_on`` from their variables, when set."""
    options: dict[str, Any] = {}
    in_body = get("CLIENT_ID_IN_BODY")
    if in_body:
        if in_body.lower() not in _BOOLEANS:
            raise ConfigurationError(
                f"{prefix}CLIENT_ID_IN_BODY must be true or false (or 1/0, yes/no)")
        options["client_id_in_body"] = _BOOLEANS[in_body.lower()]
    refresh_on = get("REFRESH_ON")
    if refresh_on:
        if not all(item.isascii() and item.isdigit() and len(item) == 3
                   for item in refresh_on.split()):
            raise ConfigurationError(
                f"{prefix}REFRESH_ON must be HTTP statuses separated by spaces, e.g. 403")
        options["refresh_on"] = {401, *map(int, refresh_on.split())}
    return options


_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
