"""requests-oauthcc against django-oauth-toolkit, a widely deployed Django authorization server.

Smoke tests of the ``dot_server`` fixture; the shared scenarios run in the matrix.
"""

from __future__ import annotations

import requests

from .servers import InteropServer, auth_for


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
