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
    ClientCredentialsAuth,
    ConfigurationError,
    CredentialError,
    OAuthError,
    TokenRetry,
    _watch,
)
from requests_oauthcc.cache import MemoryTokenCache
from requests_oauthcc.platforms import GitHubActionsOIDC, kubernetes_token
from requests_oauthcc.testing import FakeIssuer, FederatedIdentity, OAuthTestServer

from .certs import client_files, issue_client, make_pki, mtls_auth, mtls_server
from .conftest import CLIENT_ID, replace_file
from .keys import rsa_pair
from .rawserver import RawServer, in_turn, raw_response
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
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token file whose exp is an integer too large for a float (JSON allows it) is "not
    a usable JWT": ConfigurationError when the auth is built, CredentialError at a token
    request after a rotation to such a file, never a bare OverflowError. (The bad file is
    looked at again for 0.2 s instead of the 1 s SETTLE_SECONDS: not what is tested.)"""
    monkeypatch.setattr(_watch, "SETTLE_SECONDS", 0.2)
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


# -- private keys and passwords in the frames of a failed load -------------------------------


def encrypted_pem(password: bytes) -> str:
    return rsa_pair().encrypted_pem(password).decode()


def test_a_key_callable_that_fails_to_load_shows_no_key_in_any_frame() -> None:
    """private_key= a callable returning a PEM that does not load (its line breaks written
    as \\n, as in an environment variable): the ConfigurationError's frames hold no line of
    the key."""
    pem = rsa_pair().private_pem
    line = pem.splitlines()[3]
    escaped = pem.replace("\n", "\\n")
    with pytest.raises(ConfigurationError, match="line breaks") as caught:
        ClientCredentialsAuth("http://127.0.0.1:1/token", CLIENT_ID,
                              private_key=lambda: escaped)
    assert line not in shown(caught.value)


def test_a_password_callable_shows_in_no_frame() -> None:
    """private_key_password= a callable: a wrong password, or one given for a key that is
    not encrypted, is refused without the password (or the encrypted key) in any frame."""
    password = "callable-Pa55word-Hq7"
    pem = encrypted_pem(b"the-right-one")
    for key in (pem, rsa_pair().private_pem):
        with pytest.raises(ConfigurationError, match="password") as caught:
            ClientCredentialsAuth("http://127.0.0.1:1/token", CLIENT_ID, private_key=key,
                                  private_key_password=lambda: password)
        text = shown(caught.value)
        assert password not in text and password.encode().hex() not in text
    with pytest.raises(ConfigurationError) as caught:
        ClientCredentialsAuth("http://127.0.0.1:1/token", CLIENT_ID,
                              private_key=lambda: pem, private_key_password="wrong")
    assert pem.splitlines()[3] not in shown(caught.value)


def test_a_dpop_key_password_shows_in_no_frame() -> None:
    """DPoPKey.load(password=...): a wrong password is refused without it in any frame."""
    from requests_oauthcc import DPoPKey

    password = "dpop-Pa55word-Xr4t"
    with pytest.raises(ConfigurationError) as caught:
        DPoPKey.load(encrypted_pem(b"the-right-one"), password=password)
    assert password not in shown(caught.value)


def test_a_rotated_key_file_with_a_wrong_password_shows_it_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file rotated to one the password callable does not open: the token request's
    CredentialError holds the password in no frame of its chain. (The bad file is looked at
    again for 0.2 s instead of the 1 s SETTLE_SECONDS: not what is tested.)"""
    monkeypatch.setattr(_watch, "SETTLE_SECONDS", 0.2)
    password = "rotating-Pa55word-Lm2"
    path = tmp_path / "key.pem"
    path.write_text(encrypted_pem(password.encode()))
    auth = ClientCredentialsAuth("http://127.0.0.1:1/token", CLIENT_ID, private_key=path,
                                 private_key_password=lambda: password)
    replaced = tmp_path / "key.new"
    replaced.write_text(encrypted_pem(b"another-password"))
    os.replace(replaced, path)
    with pytest.raises(CredentialError, match="password") as caught:
        auth.fetch_token()
    assert password not in shown(caught.value)


def test_an_assertion_callable_returning_no_jwt_shows_it_in_no_frame() -> None:
    """client_assertion= a callable returning something that is not a JWT (an opaque
    token): CredentialError, and no frame of its chain (``__context__`` included) holds it."""
    opaque = "opaque-credential-" + secrets.token_urlsafe(24)
    auth = ClientCredentialsAuth("http://127.0.0.1:1/token", CLIENT_ID,
                                 client_assertion=lambda: opaque)
    with pytest.raises(CredentialError, match="not a JWT") as caught:
        auth.fetch_token()
    assert opaque not in shown(caught.value)


def test_an_assertion_callable_returning_a_bad_jwt_shows_it_in_no_frame() -> None:
    """The same for a JWT whose exp is not a number: the signature is in no frame."""
    signature = secrets.token_urlsafe(48)
    bad = make_jwt({"iss": "i", "sub": "s", "exp": "tomorrow"}, signature)
    auth = ClientCredentialsAuth("http://127.0.0.1:1/token", CLIENT_ID,
                                 client_assertion=lambda: bad)
    with pytest.raises(CredentialError, match="exp") as caught:
        auth.fetch_token()
    assert signature not in shown(caught.value)


# -- server echoes in UTF-16 -------------------------------------------------------------------


def test_a_request_token_echoed_in_utf16_is_not_shown() -> None:
    """A token service refusing the request with a UTF-16 body (as .NET servers may send)
    that echoes the request token: the message does not show it, not even spaced out."""
    body = json.dumps({"message": f"bad token {REQUEST_TOKEN}"}).encode("utf-16")
    answer = raw_response(401, body,
                          headers={"Content-Type": "application/json; charset=utf-16"})
    with RawServer(lambda request: [(0, answer)]) as server, \
            pytest.raises(CredentialError) as caught:
        GitHubActionsOIDC("api://x", environ=github_environ(server))()
    message = str(caught.value)
    assert REQUEST_TOKEN not in message.replace(" ", "").replace("\x00", "")


# -- findings left to the lead -----------------------------------------------------------------


def test_a_transient_token_service_failure_is_retried() -> None:
    """GitHub's token service answering 503 once (@actions/core's getIDToken retries 5xx up
    to 10 times): with retries=3 the token request still succeeds."""
    with FakeIssuer() as issuer, OAuthTestServer({}, federated_clients={
            CLIENT_ID: FederatedIdentity(issuer.url, issuer.github_subject, "api://x")},
            ) as server:
        good = json.dumps({"value": issuer.github_token("api://x")}).encode()
        with RawServer(in_turn([(0, raw_response(503, b"busy"))],
                               [(0, raw_response(200, good))])) as github:
            auth = ClientCredentialsAuth(
                server.token_url, CLIENT_ID, retries=TokenRetry(total=3, backoff_factor=0.01),
                client_assertion=GitHubActionsOIDC("api://x", environ=github_environ(github)))
            auth.fetch_token()
        assert server.token_requests == 1


def test_rotated_certificate_with_a_shared_cache(tmp_path: Path) -> None:
    """Two auths (two processes) share a token cache and the certificate files. After the
    files rotate, the one whose token comes from the cache (bound to the new certificate)
    must not call the API over its pooled connection opened with the old one: its calls
    succeed, without a 401 and without a token request per call."""
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    cert, key = client_files(pki, tmp_path)
    cache = MemoryTokenCache()
    with mtls_server(pki) as server:
        fetcher, reader = (mtls_auth(server, pki, cert, key, cache=cache) for _ in range(2))
        fetcher.fetch_token()
        api = reader.make_session()
        assert api.get(server.resource_url, verify=pki.ca).status_code == 200
        new_cert, new_key = issue_client(pki)
        replace_file(key, new_key)
        replace_file(cert, new_cert)
        fetcher.fetch_token()  # bound to the new certificate, shared through the cache
        reader.fetch_token()
        before = server.token_requests
        statuses = [api.get(server.resource_url, verify=pki.ca) for _ in range(3)]
        assert [(r.status_code, len(r.history)) for r in statuses] == [(200, 0)] * 3
        assert server.token_requests == before


def test_an_assertion_for_another_audience_does_not_read_the_cached_token(
        tmp_path: Path) -> None:
    """Two auths share a cache; the second one's assertion has the same iss and sub but
    another aud (a projected volume set up for another server). The server would refuse
    it; the cache must not hand it the first one's token instead (the rule the cache key
    keeps for secrets and keys: a wrong credential gets the server's error)."""
    with FakeIssuer() as issuer, OAuthTestServer({}, federated_clients={
            CLIENT_ID: FederatedIdentity(issuer.url, SUBJECT)}) as server:
        good = issuer.project(tmp_path / "good", SUBJECT, server.token_url)
        other = issuer.project(tmp_path / "other", SUBJECT, "https://elsewhere.example")
        cache = MemoryTokenCache()
        ClientCredentialsAuth(server.token_url, CLIENT_ID, client_assertion=good.path,
                              cache=cache).fetch_token()
        wrong = ClientCredentialsAuth(server.token_url, CLIENT_ID,
                                      client_assertion=other.path, cache=cache)
        with pytest.raises(OAuthError):
            wrong.fetch_token()
