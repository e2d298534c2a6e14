"""requests-oauthcc against oidc-provider, an independently written authorization server."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    InvalidClientError,
    InvalidScopeError,
    InvalidTargetError,
    TokenError,
)

from .conftest import (
    EC_ID,
    POST_ID,
    POST_SECRET,
    RSA_ID,
    Interop,
    MtlsInterop,
)


def call(interop: Interop, auth: ClientCredentialsAuth) -> dict[str, str]:
    response = requests.get(interop.api(), auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_private_key_jwt(interop: Interop, kind: str) -> None:
    """RS256 and ES256 assertions, with kid, verified against the registered JWKS."""
    client_id, pem, kid = ((RSA_ID, interop.rsa_private_pem, "rsa-1") if kind == "rsa"
                           else (EC_ID, interop.ec_private_pem, "ec-1"))
    auth = ClientCredentialsAuth(interop.token_url, client_id, private_key=pem,
                                 private_key_id=kid)
    assert call(interop, auth)["client_id"] == client_id


def test_discovery(interop: Interop) -> None:
    """from_issuer finds the endpoint through OIDC discovery and picks a listed method."""
    auth = ClientCredentialsAuth.from_issuer(interop.issuer, POST_ID, POST_SECRET,
                                             auth_method="client_secret_post")
    assert call(interop, auth)["client_id"] == POST_ID
    assert f"token_url='{interop.token_url}'" in repr(auth)
    chosen = ClientCredentialsAuth.from_issuer(interop.issuer, RSA_ID,
                                               private_key=interop.rsa_private_pem)
    assert call(interop, chosen)["client_id"] == RSA_ID
    assert "private_key_jwt" in repr(chosen)


def test_scope_and_resource_give_a_jwt_access_token(interop: Interop) -> None:
    """A resource indicator for the JWT resource yields a JWT the API checks via JWKS."""
    auth = ClientCredentialsAuth(interop.token_url, POST_ID, POST_SECRET,
                                 auth_method="client_secret_post", scope="read",
                                 resource=interop.jwt_resource)
    info = call(interop, auth)
    assert info["format"] == "jwt" and info["scope"] == "read"
    assert auth.token is not None and auth.token.access_token.count(".") == 2
    assert auth.token.scope == "read"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"client_secret": "wrong-secret"}, InvalidClientError),
        ({"scope": "admin"}, InvalidScopeError),
        ({"resource": "https://unknown.example.test/"}, InvalidTargetError),
    ],
)
def test_error_mapping(
    interop: Interop, kwargs: dict[str, str], error: type[TokenError]
) -> None:
    """Wrong secret, forbidden scope and unknown resource raise the matching classes."""
    options: dict[str, Any] = {"client_secret": POST_SECRET, **kwargs}
    auth = ClientCredentialsAuth(interop.token_url, POST_ID, options.pop("client_secret"),
                                 auth_method="client_secret_post", retries=0, **options)
    with pytest.raises(error) as caught:
        auth.fetch_token()
    assert type(caught.value) is error
    assert POST_SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("client_id", "method"),
    [("mtls-client", "tls_client_auth"), ("self-signed-client", "self_signed_tls_client_auth")],
)
def test_mtls_methods_and_certificate_bound_tokens(
    interop_mtls: MtlsInterop, client_id: str, method: str
) -> None:
    """RFC 8705 over real TLS: the certificate authenticates the client, the token is bound
    to it (the API refuses it without the certificate), and make_session() sends it."""
    pki = interop_mtls.pki
    cert = ((pki.client_cert, pki.client_key) if method == "tls_client_auth"
            else (pki.self_signed_cert, pki.self_signed_key))
    token_session = requests.Session()
    token_session.verify = pki.ca
    auth = ClientCredentialsAuth(interop_mtls.token_url, client_id, auth_method=method,
                                 cert=cert, session=token_session, retries=0)
    token = auth.fetch_token()
    assert token.raw.get("token_type", "").lower() == "bearer"
    without = requests.get(interop_mtls.api(), auth=auth, verify=pki.ca, timeout=10)
    assert without.status_code == 401
    with auth.make_session() as api:
        response = api.get(interop_mtls.api(), verify=pki.ca, timeout=10)
    assert response.status_code == 200 and response.json()["client_id"] == client_id
