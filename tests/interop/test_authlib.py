"""Smoke tests of the Authlib server fixture with requests-oauthcc as it is.

The full scenario list runs on every server in test_matrix.py; these show that the
fixture's clients, counter, revocation and metadata work, and pin what Authlib answers.
"""

from __future__ import annotations

import requests

from .servers import InteropServer, auth_for, call

# Authlib's InvalidTokenError (RFC 6750 §3.1), as its Flask ResourceProtector sends it.
BAD_TOKEN_CHALLENGE = (
    'Bearer error="invalid_token", error_description="The access token provided is '
    'expired, revoked, malformed, or invalid for other reasons."'
)


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
