"""Client authentication methods, each run through the same checks, and the real server."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import unquote_plus

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, ConfigurationError, CredentialError
from requests_oauthcc.client_auth import (
    ClientAuthMethod,
    ClientCredentials,
    ClientSecretBasic,
    ClientSecretPost,
    SecretSource,
    make_client_auth,
)
from requests_oauthcc.testing import OAuthTestServer

SECRET = "s3cret-Value-9"
SECRET_METHODS = ["client_secret_basic", "client_secret_post", "client_secret_jwt"]


def secret_method(name: str, secret: SecretSource | None) -> ClientAuthMethod:
    return make_client_auth(name, ClientCredentials(secret=secret))
AWKWARD = [
    ("plain-id", "plain-secret"),
    ("id:with:colons", "secret:with:colons"),
    ("id+plus", "se+cr+et"),
    ("id%25", "100%secret%"),
    ("id with spaces", "secret with spaces"),
    ("ïd-ünicode-客户", "sécret-🔑-密码"),
    ("a&b=c", "x&y=z/?#"),
]


@pytest.mark.parametrize("name", SECRET_METHODS)
def test_every_method_has_a_secret_free_repr(name: str) -> None:
    """repr of a configured method never shows the secret."""
    method = secret_method(name, SECRET)
    assert SECRET not in repr(method)
    assert method.name == name


@pytest.mark.parametrize("name", SECRET_METHODS)
def test_every_method_lists_what_it_sends_as_secret(name: str) -> None:
    """The parts name the secret so errors can redact anything echoed back."""
    parts = secret_method(name, SECRET).authenticate("client", "https://as/token")
    assert SECRET in parts.secrets
    assert SECRET not in repr(parts)


@pytest.mark.parametrize("name", SECRET_METHODS)
def test_callable_secret_is_read_at_each_request(name: str) -> None:
    """A callable secret is called per token request, so rotation is picked up."""
    values = iter(["first-secret", "second-secret"])
    method = secret_method(name, lambda: next(values))
    first = method.authenticate("c", "https://as/token").secrets
    second = method.authenticate("c", "https://as/token").secrets
    assert "first-secret" in first and "second-secret" in second


@pytest.mark.parametrize("name", SECRET_METHODS)
@pytest.mark.parametrize("bad", [None, "", b"bytes", 42])
def test_bad_secrets_are_refused_with_a_clear_error(name: str, bad: object) -> None:
    """A missing, empty or non-string secret is a ConfigurationError naming client_secret."""
    with pytest.raises(ConfigurationError, match="client_secret"):
        secret_method(name, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", SECRET_METHODS)
def test_callable_returning_garbage_is_refused_at_request_time(name: str) -> None:
    """A callable that returns a non-string gives a typed error, not a TypeError: a
    CredentialError, as for every credential that cannot be had at a token request."""
    method = secret_method(name, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(CredentialError, match="client_secret callable gave no usable secret"):
        method.authenticate("c", "https://as/token")


def test_unknown_and_none_methods_are_refused() -> None:
    """'none' cannot authenticate this grant; unknown names list the known ones."""
    with pytest.raises(ConfigurationError, match="confidential"):
        secret_method("none", SECRET)
    with pytest.raises(ConfigurationError, match="client_secret_basic"):
        secret_method("client_secret_magic", SECRET)


@pytest.mark.parametrize(("client_id", "secret"), AWKWARD)
def test_basic_form_encodes_id_and_secret_before_base64(client_id: str, secret: str) -> None:
    """RFC 6749 §2.3.1: each part is form-urlencoded, then joined by ':' and base64-ed."""
    parts = ClientSecretBasic(secret).authenticate(client_id, "https://as/token")
    encoded = parts.headers["Authorization"].removeprefix("Basic ")
    raw_id, _, raw_secret = base64.b64decode(encoded).decode("ascii").partition(":")
    assert ":" not in raw_id and ":" not in raw_secret
    assert (unquote_plus(raw_id), unquote_plus(raw_secret)) == (client_id, secret)


def test_post_puts_credentials_in_the_form() -> None:
    """client_secret_post sends client_id and client_secret as form fields, no header."""
    parts = ClientSecretPost(SECRET).authenticate("cid", "https://as/token")
    assert dict(parts.form) == {"client_id": "cid", "client_secret": SECRET}
    assert not parts.headers


@pytest.mark.parametrize("name", SECRET_METHODS)
@pytest.mark.parametrize(("client_id", "secret"), AWKWARD)
def test_awkward_credentials_work_against_the_server(
    name: str, client_id: str, secret: str, session: requests.Session
) -> None:
    """The local server, decoding per the RFC, accepts every awkward id and secret."""
    with OAuthTestServer({client_id: secret}) as server:
        auth = ClientCredentialsAuth(server.token_url, client_id, secret, auth_method=name)
        response = session.get(server.resource_url, auth=auth)
        assert response.status_code == 200
        assert response.json()["client_id"] == client_id
        assert server.token_log[-1].auth_method == name


def test_wrong_secret_is_rejected_by_the_server(
    make_auth: Callable[..., ClientCredentialsAuth],
) -> None:
    """The server really checks the secret: a wrong one is invalid_client."""
    from requests_oauthcc import InvalidClientError

    auth = make_auth(client_secret="wrong")
    with pytest.raises(InvalidClientError):
        auth.fetch_token()


def test_methods_satisfy_the_protocol() -> None:
    """Both built-in methods are ClientAuthMethod values (static check, run at import)."""
    methods: list[ClientAuthMethod] = [ClientSecretBasic(SECRET), ClientSecretPost(SECRET)]
    assert [m.name for m in methods] == SECRET_METHODS[:2]
