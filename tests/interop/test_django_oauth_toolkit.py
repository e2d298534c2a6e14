"""requests-oauthcc against django-oauth-toolkit, a widely deployed Django authorization server.

Smoke tests of the ``dot_server`` fixture; the shared scenarios run in the matrix.
"""

from __future__ import annotations

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, InvalidClientError

from .servers import InteropServer


def auth_for(server: InteropServer, role: str, scope: str | None = None,
             ) -> ClientCredentialsAuth:
    client = server.clients[role]
    return ClientCredentialsAuth(server.token_url, client.client_id, client.client_secret,
                                 scope=scope, auth_method=client.auth_method)


def call(server: InteropServer, auth: ClientCredentialsAuth) -> dict[str, str]:
    response = requests.get(server.api_url, auth=auth, timeout=10)
    assert response.status_code == 200, response.status_code
    body: dict[str, str] = response.json()
    return body


def test_client_secret_post_with_scope(dot_server: InteropServer) -> None:
    """client_secret_post with scope "read" gets a token granted just "read", counted once."""
    before = dot_server.token_requests()
    auth = auth_for(dot_server, "post", scope="read")
    assert call(dot_server, auth) == {"client_id": dot_server.clients["post"].client_id,
                                      "scope": "read"}
    token = auth.token
    assert token is not None and token.scope == "read"
    assert dot_server.token_requests() == before + 1


@pytest.mark.parametrize("role", ["basic", "awkward_basic"])
def test_client_secret_basic(dot_server: InteropServer, role: str) -> None:
    """client_secret_basic works, also for an id and secret full of characters to encode."""
    info = call(dot_server, auth_for(dot_server, role))
    assert info == {"client_id": dot_server.clients[role].client_id, "scope": "read write"}


def test_wrong_secret_is_invalid_client(dot_server: InteropServer) -> None:
    """A wrong secret is refused by the token endpoint as invalid_client."""
    client = dot_server.clients["basic"]
    auth = ClientCredentialsAuth(dot_server.token_url, client.client_id, "not-the-secret")
    with pytest.raises(InvalidClientError):
        requests.get(dot_server.api_url, auth=auth, timeout=10)


def test_revoked_token_is_refused_with_a_bare_403(dot_server: InteropServer) -> None:
    """The API takes a good token; once revoked at DOT it answers 403, no challenge."""
    access_token = auth_for(dot_server, "basic").fetch_token().access_token
    headers = {"Authorization": f"Bearer {access_token}"}
    assert requests.get(dot_server.api_url, headers=headers, timeout=10).status_code == 200
    dot_server.revoke(access_token)
    refused = requests.get(dot_server.api_url, headers=headers, timeout=10)
    assert refused.status_code == 403
    assert refused.status_code in dot_server.refresh_on
    assert "WWW-Authenticate" not in refused.headers


def test_metadata_at_the_issuer_suffix(dot_server: InteropServer) -> None:
    """DOT itself publishes RFC 8414 metadata at {issuer}/.well-known/..., naming its issuer."""
    assert dot_server.issuer is not None
    url = f"{dot_server.issuer}/.well-known/oauth-authorization-server"
    metadata = requests.get(url, timeout=10).json()
    assert metadata["issuer"] == dot_server.issuer
    assert metadata["token_endpoint"] == dot_server.token_url
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]
