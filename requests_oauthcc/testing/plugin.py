"""pytest fixtures around the local authorization server (see ``requests_oauthcc.testing``).

Enable them in your tests with ``-p requests_oauthcc.testing`` or, in a conftest.py,
``pytest_plugins = ["requests_oauthcc.testing"]``. Nothing is registered automatically:
installing requests-oauthcc does not change other projects' test runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ..auth import ClientCredentialsAuth
from .server import OAuthTestServer

__all__ = ["oauth_auth", "oauth_server"]


@pytest.fixture
def oauth_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthTestServer]:
    """A fresh local authorization server and protected resource on 127.0.0.1.

    ``issuer``, ``token_url``, ``resource_url``; a registered client (``client_id``,
    ``client_secret``); controls ``revoke_all()``, ``expire_all()``, ``queue_response()``
    (token endpoint failures); counters ``token_requests``, ``resource_requests``,
    ``resource_rejections`` and the ``token_log``. For the test, 127.0.0.1 is added to
    ``NO_PROXY``: behind a proxy set in the environment, plain http to the server would
    otherwise (rightly) be refused.
    """
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, ",".join(filter(None, (os.environ.get(name), "127.0.0.1"))))
    with OAuthTestServer({"test-client": "test-client-secret"}) as server:
        yield server


@pytest.fixture
def oauth_auth(oauth_server: OAuthTestServer) -> Iterator[ClientCredentialsAuth]:
    """A ready ClientCredentialsAuth for ``oauth_server``'s client, closed afterwards."""
    auth = ClientCredentialsAuth(
        oauth_server.token_url, oauth_server.client_id, oauth_server.client_secret
    )
    yield auth
    auth.close()
