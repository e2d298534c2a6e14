"""The README's platform recipes end to end: a fake platform (FakeIssuer: kubelet-style
token files, GitHub Actions' ID-token service) and an authorization server that verifies
the platform's JWTs through the issuer's discovery document and JWKS (federation)."""

from __future__ import annotations

import uuid
from pathlib import Path

import requests

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.platforms import (
    GitHubActionsOIDC,
    entra_workload_identity,
    kubernetes_token,
)
from requests_oauthcc.testing import (
    FakeIssuer,
    FederatedIdentity,
    OAuthTestServer,
    credential_fingerprint,
)

from .conftest import CLIENT_ID, in_threads

SUBJECT = "system:serviceaccount:payments:worker"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"


def test_kubernetes_projected_token_rotates_and_names_the_client(tmp_path: Path) -> None:
    """kubernetes_token(path): the projected token authenticates (with client_id, and
    without: the server finds the client by iss and sub); after the kubelet rotates it,
    the next token request sends the new one."""
    with FakeIssuer() as issuer, OAuthTestServer(
            {}, federated_clients={CLIENT_ID: FederatedIdentity(issuer.url, SUBJECT)}) as server:
        projected = issuer.project(tmp_path, SUBJECT, server.token_url)
        for client_id in (CLIENT_ID, None):
            auth = ClientCredentialsAuth(server.token_url, client_id,
                                         client_assertion=kubernetes_token(projected.path))
            assert requests.get(server.resource_url, auth=auth, timeout=10).status_code == 200
            assert server.token_log[-1].client_id == CLIENT_ID
            assert ("client_id" in server.token_log[-1].form) == (client_id is not None)
        rotated = projected.rotate()
        auth.fetch_token()
        assert server.token_log[-1].credential == credential_fingerprint(assertion=rotated)


def test_entra_workload_identity_in_one_call(tmp_path: Path) -> None:
    """entra_workload_identity(): the tenant's v2.0 token URL, the client id and the
    federated token file from the webhook's variables; the token request carries the
    scope and the assertion with the Entra audience."""
    tenant = str(uuid.uuid4())
    with FakeIssuer() as issuer, OAuthTestServer(
            {}, catch_all=True, federated_clients={
                CLIENT_ID: FederatedIdentity(issuer.url, SUBJECT, ENTRA_AUDIENCE)}) as server:
        projected = issuer.project(tmp_path, SUBJECT, ENTRA_AUDIENCE)
        environ = {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": tenant,
                   "AZURE_FEDERATED_TOKEN_FILE": str(projected.path),
                   "AZURE_AUTHORITY_HOST": server.issuer + "/"}
        auth = ClientCredentialsAuth(**entra_workload_identity(environ),
                                     scope="api://my-api/.default")
        assert requests.get(server.resource_url, auth=auth, timeout=10).status_code == 200
        record = server.token_log[-1]
        assert record.client_id == CLIENT_ID and record.form["scope"] == [
            "api://my-api/.default"]
        assert record.credential == credential_fingerprint(assertion=projected.read())
        assert f"/{tenant}/oauth2/v2.0/token" in repr(auth)


def test_github_actions_oidc_one_fetch_for_many_threads() -> None:
    """GitHubActionsOIDC(audience): 16 threads' first calls make one token request and one
    ID-token request; later token requests reuse the ID token while it is fresh."""
    audience = "https://auth.example.com"
    with FakeIssuer() as issuer, OAuthTestServer({}, federated_clients={
            CLIENT_ID: FederatedIdentity(issuer.url, issuer.github_subject, audience)},
            ) as server:
        source = GitHubActionsOIDC(audience, environ=issuer.environ())
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, client_assertion=source)
        with requests.Session() as api:
            results = in_threads(16, lambda: api.get(server.resource_url, auth=auth,
                                                     timeout=30).status_code)
        assert results == [200] * 16
        assert server.token_requests == 1 and issuer.github_requests == 1
        for _ in range(3):
            auth.fetch_token()
        assert server.token_requests == 4 and issuer.github_requests == 1
        assert server.token_log[-1].auth_method == "private_key_jwt"
