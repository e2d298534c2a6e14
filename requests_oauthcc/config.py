"""Configuration from environment variables, for ``ClientCredentialsAuth.from_env``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .client_auth import SecretFile
from .discovery import Issuer
from .errors import ConfigurationError
from .redaction import Secret

__all__ = ["environment_options"]


def environment_options(
    prefix: str, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Constructor arguments from ``{prefix}*`` variables; ``overrides`` win over them."""
    options = {**_read(prefix, environ), **overrides}
    if "token_url" not in options:
        raise ConfigurationError(f"{prefix}TOKEN_URL or {prefix}ISSUER must be set")
    if "client_id" not in options:
        raise ConfigurationError(f"{prefix}CLIENT_ID must be set")
    if not any(options.get(k) for k in ("client_secret", "private_key", "cert", "session")):
        raise ConfigurationError(
            f"no client credentials: set {prefix}CLIENT_SECRET, {prefix}CLIENT_SECRET_FILE "
            f"or {prefix}PRIVATE_KEY_FILE"
        )
    return options


def _read(prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
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
    secret, secret_file = get("CLIENT_SECRET"), get("CLIENT_SECRET_FILE")
    if secret and secret_file:
        raise conflict("CLIENT_SECRET", "CLIENT_SECRET_FILE")
    if secret_file:
        if not Path(secret_file).is_file():
            raise ConfigurationError(
                f"{prefix}CLIENT_SECRET_FILE names {secret_file!r}, which is not a readable file"
            )
        options["client_secret"] = SecretFile(secret_file)
    elif secret:
        options["client_secret"] = Secret(secret)
    key_file = get("PRIVATE_KEY_FILE")
    if key_file:
        options["private_key"] = Path(key_file)
    for name in ("SCOPE", "AUDIENCE", "AUTH_METHOD"):
        value = get(name)
        if value:
            options[name.lower()] = value
    resource = get("RESOURCE")
    if resource:
        options["resource"] = resource.split()
    options.update(_switches(prefix, get))
    return options


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
