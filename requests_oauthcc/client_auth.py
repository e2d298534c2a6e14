"""Client authentication methods: how the client proves who it is to the token endpoint.

Each method is a frozen value with one job: given the client id and token URL, say which
headers and form fields authenticate this token request (:class:`ClientAuthParts`).
Names are those of the IANA "OAuth Token Endpoint Authentication Methods" registry
(RFC 7591), as passed to ``auth_method=``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol
from urllib.parse import quote_plus

from .errors import ConfigurationError

__all__ = [
    "ClientAuthMethod",
    "ClientAuthParts",
    "ClientSecretBasic",
    "ClientSecretPost",
    "SecretSource",
    "make_client_auth",
    "resolve_secret",
]

SecretSource = str | Callable[[], str]
"""A client secret, or a zero-argument callable returning it (read at each token request)."""


@dataclass(frozen=True)
class ClientAuthParts:
    """What one token request carries to authenticate the client.

    ``secrets`` lists the sensitive strings sent (secret, assertion), so that anything
    echoed back by the server can be redacted before it reaches a message or a log.
    """

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    form: Sequence[tuple[str, str]] = field(default=(), repr=False)
    secrets: Sequence[str] = field(default=(), repr=False)


class ClientAuthMethod(Protocol):
    """The interface every client authentication method implements."""

    name: ClassVar[str]

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        """Headers and form fields that authenticate one token request."""
        ...


def resolve_secret(secret: SecretSource) -> str:
    """The secret itself: ``secret``, or what the callable returns now."""
    value = secret() if callable(secret) else secret
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            "client_secret must be a non-empty str or a callable returning one; "
            f"got {type(value).__name__}{' (empty)' if value == '' else ''}"
        )
    return value


def _form_encode(value: str) -> str:
    """application/x-www-form-urlencoded, as RFC 6749 Appendix B asks (UTF-8, space as +)."""
    return quote_plus(value, safe="", encoding="utf-8")


@dataclass(frozen=True)
class ClientSecretBasic:
    """``client_secret_basic``: HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).

    The id and secret are each form-urlencoded before being joined with ``:`` and
    base64-encoded, so ids and secrets holding ``:``, ``+``, ``%``, spaces or non-ASCII
    characters reach the server intact.
    """

    name: ClassVar[str] = "client_secret_basic"
    secret: SecretSource = field(repr=False)

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        secret = resolve_secret(self.secret)
        userpass = f"{_form_encode(client_id)}:{_form_encode(secret)}"
        basic = base64.b64encode(userpass.encode("ascii")).decode("ascii")
        return ClientAuthParts(headers={"Authorization": f"Basic {basic}"}, secrets=(secret, basic))


@dataclass(frozen=True)
class ClientSecretPost:
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the form body."""

    name: ClassVar[str] = "client_secret_post"
    secret: SecretSource = field(repr=False)

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        secret = resolve_secret(self.secret)
        return ClientAuthParts(
            form=(("client_id", client_id), ("client_secret", secret)), secrets=(secret,)
        )


_SECRET_METHODS: dict[str, Callable[[SecretSource], ClientAuthMethod]] = {
    ClientSecretBasic.name: ClientSecretBasic,
    ClientSecretPost.name: ClientSecretPost,
}


def make_client_auth(auth_method: str, client_secret: SecretSource | None) -> ClientAuthMethod:
    """The client authentication method named ``auth_method``, set up with its credentials."""
    if auth_method == "none":
        raise ConfigurationError(
            "auth_method='none' is not allowed: the client credentials grant needs an "
            "authenticated (confidential) client; use client_secret_basic or client_secret_post"
        )
    factory = _SECRET_METHODS.get(auth_method)
    if factory is None:
        known = ", ".join(sorted(_SECRET_METHODS))
        raise ConfigurationError(f"unknown auth_method {auth_method!r}; use one of: {known}")
    if client_secret is None:
        raise ConfigurationError(f"auth_method={auth_method!r} needs a client_secret")
    if not (callable(client_secret) or isinstance(client_secret, str)) or client_secret == "":
        raise ConfigurationError(
            "client_secret must be a non-empty str or a zero-argument callable returning one"
        )
    return factory(client_secret)
