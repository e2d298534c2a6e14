"""The same scenarios against every real authorization server (issue #11).

oidc-provider (Node.js), django-oauth-toolkit (Django) and Authlib's authorization server
(Flask) are each started once per session (``conftest.py``) and described by an
:class:`~tests.interop.servers.InteropServer`. A scenario a server cannot run (the JWT
client authentication methods on django-oauth-toolkit) is not generated for it.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, InvalidClientError

from ..conftest import in_threads
from .servers import InteropServer, auth_for, call

SERVERS = {"oidc-provider": "oidc_provider", "django-oauth-toolkit": "dot_server",
           "authlib": "authlib_server"}
ROLES = {
    "oidc-provider": ["basic", "awkward_basic", "post", "client_secret_jwt", "private_key_jwt"],
    "django-oauth-toolkit": ["basic", "awkward_basic", "post"],  # no JWT client auth in DOT
    "authlib": ["basic", "awkward_basic", "post", "client_secret_jwt", "private_key_jwt"],
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> InteropServer:
    found: InteropServer = request.getfixturevalue(SERVERS[request.param])
    return found


@pytest.mark.parametrize(
    ("name", "role"), [(name, role) for name, roles in ROLES.items() for role in roles])
def test_client_authentication_methods(
    request: pytest.FixtureRequest, name: str, role: str
) -> None:
    """Every client authentication method the server supports gets a token the API takes;
    awkward_basic's id and secret hold a space, '+', '%', ':', '/', '=' and non-ASCII."""
    server: InteropServer = request.getfixturevalue(SERVERS[name])
    auth = auth_for(server, role)
    assert call(server, auth)["client_id"] == server.clients[role].client_id


def test_requested_scope_is_granted(server: InteropServer) -> None:
    """scope="read" is asked for and granted: in the token response and at the API."""
    auth = auth_for(server, "post", scope="read")
    assert call(server, auth)["scope"] == "read"
    assert auth.token is not None and auth.token.scope == "read"


def test_wrong_secret_is_invalid_client(server: InteropServer) -> None:
    """A wrong secret raises InvalidClientError, whose message does not hold it."""
    auth = auth_for(server, "basic", client_secret="wrong-Secret-3b8", retries=0)
    with pytest.raises(InvalidClientError) as caught:
        auth.fetch_token()
    assert type(caught.value) is InvalidClientError
    assert "wrong-Secret-3b8" not in str(caught.value)


def test_refresh_over_three_lifetimes(server: InteropServer) -> None:
    """Four threads calling the API through three lifetimes of 2 s tokens: no call fails,
    and the token requests are one per lifetime (plus at most one a 401 forces each)."""
    auth = auth_for(server, "post")
    before = server.token_requests()
    statuses: list[int] = []
    errors: list[BaseException] = []
    end = time.monotonic() + 3 * server.token_ttl + 0.3

    def worker() -> None:
        with requests.Session() as session:
            while time.monotonic() < end:
                try:
                    statuses.append(session.get(server.api_url, auth=auth,
                                                timeout=15).status_code)
                except Exception as exc:
                    errors.append(exc)
                    return
                time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and statuses and set(statuses) == {200}
    fetched = server.token_requests() - before
    assert 3 <= fetched <= 8, fetched


def test_revocation_is_recovered_by_one_retry(server: InteropServer) -> None:
    """Revoked at the server: the next call succeeds through exactly one retry and one new
    token (counted at the server), whatever status the API answers a dead token with."""
    auth = auth_for(server, "post", leeway=0)  # no early refresh: the 2 s token is used
    call(server, auth)
    assert auth.token is not None
    fetched = time.monotonic()
    server.revoke(auth.token.access_token)
    # A status other than 401 replaces only a token older than MIN_REFRESH_INTERVAL (1 s).
    time.sleep(max(0.0, fetched + 1.1 - time.monotonic()))
    before = server.token_requests()
    response = requests.get(server.api_url, auth=auth, timeout=15)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [server.refresh_on[-1]]
    assert server.token_requests() == before + 1


def test_sixteen_cold_threads_make_one_token_request(server: InteropServer) -> None:
    """16 threads sharing one auth object, starting cold: exactly one token request."""
    auth = auth_for(server, "post")
    before = server.token_requests()
    statuses = in_threads(16, lambda: requests.get(server.api_url, auth=auth, timeout=15)
                          .status_code)
    assert statuses == [200] * 16
    assert server.token_requests() == before + 1


def test_discovery(server: InteropServer) -> None:
    """from_issuer finds the token endpoint in the metadata the server publishes."""
    assert server.issuer is not None, f"{server.name} publishes metadata"
    client = server.clients["post"]
    auth = ClientCredentialsAuth.from_issuer(server.issuer, client.client_id,
                                             client.client_secret,
                                             auth_method="client_secret_post",
                                             refresh_on=server.refresh_on)
    assert call(server, auth)["client_id"] == client.client_id
    assert f"token_url='{server.token_url}'" in repr(auth)
