"""The token request's grant parameters: scope, audience, resource and extra fields.

Built once per auth object; client authentication fields are added per request by the
client authentication method (:mod:`requests_oauthcc.client_auth`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import ConfigurationError

__all__ = ["RESERVED_FIELDS", "check_text", "grant_parameters", "normalize_scope"]

_ASSERTION_ADVICE = ("the auth method sets it: use auth_method='private_key_jwt' with "
                     "private_key=, or auth_method='client_secret_jwt'")
RESERVED_FIELDS: Mapping[str, str] = {
    "grant_type": "it is always client_credentials",
    "client_id": "pass the client_id argument; with client_secret_basic, add "
                 "client_id_in_body=True to send it in the form too (the other methods "
                 "already do)",
    "client_secret": "pass client_secret=, with auth_method='client_secret_post' to send it "
                     "in the form",
    "client_assertion": _ASSERTION_ADVICE,
    "client_assertion_type": _ASSERTION_ADVICE,
    "scope": "pass scope=",
    "audience": "pass audience=",
    "resource": "pass resource=",
}
"""Form fields that ClientCredentialsAuth sets itself, refused in ``extra_params``: what
to do instead."""


def grant_parameters(
    *,
    scope: str | Iterable[str] | None = None,
    audience: str | None = None,
    resource: str | Iterable[str] | None = None,
    extra_params: Mapping[str, str | Iterable[str]] | None = None,
) -> tuple[tuple[str, str], ...]:
    """The token request's form fields besides ``grant_type`` and client authentication.

    ``scope`` (a string or strings) is sent space-joined; ``resource`` (RFC 8707) once per
    absolute URI; ``extra_params`` values may be a string or strings (one field each).
    """
    fields: list[tuple[str, str]] = []
    joined = normalize_scope(scope)
    if joined is not None:
        fields.append(("scope", joined))
    if audience is not None:
        if not isinstance(audience, str) or not audience:
            raise ConfigurationError("audience must be a non-empty string")
        fields.append(("audience", check_text("audience", audience)))
    for uri in _strings("resource", resource):
        scheme, _, rest = uri.partition(":")
        if not scheme.isascii() or not scheme.isalpha() or not rest or "#" in uri:
            raise ConfigurationError(
                f"resource {uri!r} must be an absolute URI without a fragment (RFC 8707)"
            )
        fields.append(("resource", uri))
    for name, value in (extra_params or {}).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError("extra_params keys must be non-empty strings")
        check_text("extra_params key", name)
        if name in RESERVED_FIELDS:
            raise ConfigurationError(
                f"extra_params may not set {name!r}: {RESERVED_FIELDS[name]}"
            )
        fields.extend((name, item) for item in _strings(f"extra_params[{name!r}]", value))
    return tuple(fields)


def normalize_scope(scope: str | Iterable[str] | None) -> str | None:
    """A scope string with single spaces, from a string or an iterable of scope tokens."""
    if scope is None:
        return None
    tokens = check_text("scope", scope).split() if isinstance(scope, str) else []
    if not isinstance(scope, str):
        for item in _strings("scope", scope):
            if not item or item != item.strip() or " " in item:
                raise ConfigurationError(f"scope token {item!r} must be non-empty, without spaces")
            tokens.append(item)
    if not tokens:
        raise ConfigurationError("scope is empty; pass None to request the default scope")
    return " ".join(tokens)


def check_text(name: str, value: str) -> str:
    """``value``, if it can be sent: UTF-8 encodable (a lone surrogate, which Python makes
    of undecodable bytes in the environment or argv, cannot). Raises
    :class:`ConfigurationError` naming ``name``, never quoting the value (it may be a
    secret), with no exception chained."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        valid = False
    else:
        valid = True
    if not valid:
        del value  # a captured frame must not show it
        raise ConfigurationError(
            f"{name} is not valid text: it holds a lone surrogate, as Python makes of bytes "
            "that are not UTF-8 (in the environment or the command line); give it as UTF-8"
        )
    return value


def _strings(name: str, value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [check_text(name, value)]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{name} must be a string or an iterable of strings")
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise ConfigurationError(f"{name} must hold only strings")
    return [check_text(name, item) for item in items]

