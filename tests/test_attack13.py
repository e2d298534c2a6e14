"""An outside review of issue #13 (credentials from the platform, rotation without restart):
each test reproduces one finding against real loopback servers and real files.

Tests marked ``xfail(strict=True)`` reproduce findings left to the lead (no fix committed
here): they fail on the code they describe, and turn into failures of the suite (XPASS)
once it is fixed, so the marker is removed with the fix.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from requests_oauthcc import (
    ConfigurationError,
    CredentialError,
)
from requests_oauthcc.platforms import GitHubActionsOIDC, kubernetes_token

from .rawserver import RawServer, raw_response
from .test_secrets import with_locals

REQUEST_TOKEN = "ghs-attack13-request-token-Vb3kPq9"
SUBJECT = "system:serviceaccount:payments:worker"


def make_jwt(claims: dict[str, Any], signature: str | None = None) -> str:
    """A JWS compact serialization with ``claims`` and a random (unverified) signature."""
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return ".".join((part({"alg": "RS256", "typ": "JWT"}), part(claims),
                     signature or secrets.token_urlsafe(48)))


def github_environ(server: RawServer) -> dict[str, str]:
    return {"ACTIONS_ID_TOKEN_REQUEST_URL": server.url("/idtoken?api-version=2.0"),
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}


def shown(exc: BaseException) -> str:
    """Everything of ``exc`` an error reporter could show: messages, args, and the repr of
    every local of every frame of its whole chain (``__cause__`` and ``__context__``)."""
    return "\n".join(with_locals(exc))


# -- an integer exp (or iat) too large for a float ------------------------------------------


def test_an_assertion_file_with_a_huge_integer_exp_is_a_configuration_error(
        tmp_path: Path) -> None:
    """A token file whose exp is an integer too large for a float (JSON allows it) is "not
    a usable JWT": ConfigurationError when the auth is built, CredentialError at a token
    request after a rotation to such a file, never a bare OverflowError."""
    path = tmp_path / "token"
    path.write_text(make_jwt({"iss": "i", "sub": "s", "exp": 10**400}))
    with pytest.raises(ConfigurationError, match="exp"):
        kubernetes_token(path)
    path.write_text(make_jwt({"iss": "i", "sub": "s", "exp": int(time.time()) + 600}))
    source = kubernetes_token(path)
    replaced = tmp_path / "token.new"
    replaced.write_text(make_jwt({"iss": "i", "sub": "s", "exp": 10**400}))
    os.replace(replaced, path)
    with pytest.raises(CredentialError, match="exp"):
        source()


def test_a_token_service_answering_a_huge_exp_gets_a_credential_error() -> None:
    """A GitHub token service whose ID token has an exp too large for a float: the call
    raises CredentialError, and no frame of its traceback holds the ID token."""
    signature = secrets.token_urlsafe(48)
    token = make_jwt({"sub": "repo:o/r", "iat": int(time.time()), "exp": 10**400}, signature)
    body = json.dumps({"value": token}).encode()
    with RawServer(lambda request: [(0, raw_response(200, body))]) as server:
        source = GitHubActionsOIDC("api://x", environ=github_environ(server))
        with pytest.raises(CredentialError, match="exp") as caught:
            source()
    assert signature not in shown(caught.value)


def test_a_huge_integer_iat_is_ignored() -> None:
    """An iat too large for a float is ignored (as any unusable iat is): the ID token is
    handed out, not an OverflowError."""
    token = make_jwt({"sub": "repo:o/r", "iat": 10**400, "exp": int(time.time()) + 300})
    body = json.dumps({"value": token}).encode()
    with RawServer(lambda request: [(0, raw_response(200, body))]) as server:
        source = GitHubActionsOIDC("api://x", environ=github_environ(server))
        assert source() == token
