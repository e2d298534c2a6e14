"""Smoke tests of the Authlib server fixture with requests-oauthcc as it is.

The full scenario list runs on every server in test_matrix.py; these show that the
fixture's clients, counter, revocation and metadata work, and pin what Authlib answers.
"""

from __future__ import annotations

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, InvalidClientError

from .servers import InteropServer

# Authlib's InvalidTokenError (RFC 6750 §3.1), as its Flask ResourceProtector sends it.
BAD_TOKEN_CHALLENGE = (
    'Bearer error="invalid_token", error_description="The access token provided is '
    'expired, revoked, malformed, or invalid for other reasons."'
)


def auth_for(server: InteropServer, role: str, **options: object) -> ClientCredentialsAuth:
    client = server.clients[role]
    return ClientCredentialsAuth(server.token_url, client.client_id, client.client_secret,
                                 auth_method=client.auth_method, retries=0,
                                 **{**client.options, **options})


def call(server: InteropServer, auth: ClientCredentialsAuth) -> dict[str, str]:
    response = requests.get(server.api_url, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def test_client_secret_post_with_scope_read(authlib_server: InteropServer) -> None:
    """client_secret_post asking for "read" gets a token for "read", in one token request."""
    auth = auth_for(authlib_server, "post", scope="read")
    before = authlib_server.token_requests()
    info = call(authlib_server, auth)
    assert info == {"client_id": authlib_server.clients["post"].client_id, "scope": "read"}
    assert auth.token is not None and auth.token.scope == "read"
    assert authlib_server.token_requests() == before + 1


@pytest.mark.parametrize("role", ["basic", "client_secret_jwt", "private_key_jwt"])
def test_client_authentication_methods(authlib_server: InteropServer, role: str) -> None:
    """client_secret_basic (plain id), an HS256 assertion and an ES256 assertion with kid,
    audience the token URL, are each accepted for the client registered with them."""
    info = call(authlib_server, auth_for(authlib_server, role))
    assert info["client_id"] == authlib_server.clients[role].client_id


def test_wrong_secret_is_invalid_client(authlib_server: InteropServer) -> None:
    """A wrong secret raises InvalidClientError, without the secret in the message."""
    client_id = authlib_server.clients["post"].client_id
    auth = ClientCredentialsAuth(authlib_server.token_url, client_id, "wrong-secret-7Hq",
                                 auth_method="client_secret_post", retries=0)
    with pytest.raises(InvalidClientError) as caught:
        auth.fetch_token()
    assert caught.value.error == "invalid_client"
    assert "wrong-secret-7Hq" not in str(caught.value)


def test_revoked_token_gets_authlibs_challenge(authlib_server: InteropServer) -> None:
    """After revocation at the RFC 7009 endpoint the API answers 401 with Authlib's
    invalid_token challenge, and the library recovers with one new token."""
    auth = auth_for(authlib_server, "post")
    call(authlib_server, auth)
    assert auth.token is not None
    old = auth.token.access_token
    authlib_server.revoke(old)
    raw = requests.get(authlib_server.api_url, headers={"Authorization": f"Bearer {old}"},
                       timeout=10)
    assert raw.status_code in authlib_server.refresh_on
    assert raw.headers["WWW-Authenticate"] == BAD_TOKEN_CHALLENGE
    before = authlib_server.token_requests()
    response = requests.get(authlib_server.api_url, auth=auth, timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert authlib_server.token_requests() == before + 1


def test_discovery_from_the_issuer(authlib_server: InteropServer) -> None:
    """from_issuer reads the RFC 8414 metadata and uses its token endpoint."""
    assert authlib_server.issuer is not None
    client = authlib_server.clients["post"]
    auth = ClientCredentialsAuth.from_issuer(authlib_server.issuer, client.client_id,
                                             client.client_secret,
                                             auth_method="client_secret_post")
    assert call(authlib_server, auth)["client_id"] == client.client_id
    assert f"token_url='{authlib_server.token_url}'" in repr(auth)


@pytest.mark.xfail(strict=True, raises=InvalidClientError, reason=(
    "Authlib decodes Basic credentials with urllib.parse.unquote "
    "(authlib/oauth2/rfc6749/util.py, extract_basic_authorization), which leaves '+' as "
    "'+'; the library sends a space as '+' (RFC 6749 §2.3.1 form-encoding), so the id is "
    "unknown: 401 invalid_client 'The client does not exist on this server.'"))
def test_awkward_basic_credentials(authlib_server: InteropServer) -> None:
    """An id and secret with spaces, '+', '%', ':', '/', '=' and non-ASCII authenticate
    with client_secret_basic."""
    info = call(authlib_server, auth_for(authlib_server, "awkward_basic"))
    assert info["client_id"] == authlib_server.clients["awkward_basic"].client_id
