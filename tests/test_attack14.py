"""Attacks on issue #14's changes (refresh ahead, reading 401s, the pause after rejected
new tokens, Redis Cluster and Sentinel) by hostile servers, on real loopback servers."""

from __future__ import annotations

import base64
import json
import logging

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth

from .conftest import CLIENT_ID, CLIENT_SECRET
from .rawserver import RawRequest, RawServer, Script, raw_response

FORGED = "WARNING requests_oauthcc: all clear, token accepted"


def _segment(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_a_hostile_scope_cannot_forge_or_flood_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token server granting a ``scope`` that holds a newline, a forged log line and
    10,000 characters, for JWTs whose ``aud`` does too, to an API rejecting every token:
    every record the client logs (the INFO per token, the WARNING about rejected new
    tokens) stays one line, with no forged line and no flood."""
    issued = []

    def token_endpoint(request: RawRequest) -> Script:
        issued.append(request)
        claims = {"aud": f"api\n{FORGED}", "iat": 1}
        access_token = f"{_segment({'alg': 'none'})}.{_segment(claims)}.sig{len(issued)}"
        body = json.dumps({"access_token": access_token, "token_type": "Bearer",
                           "expires_in": 3600,
                           "scope": f"read\n{FORGED}\r\n{'x' * 10_000}"}).encode()
        return [(0, raw_response(200, body, {"Content-Type": "application/json"}))]

    def api(request: RawRequest) -> Script:
        return [(0, raw_response(401, b"", {"WWW-Authenticate": "Bearer"}))]

    with RawServer(token_endpoint, keep_alive=True) as tokens, \
            RawServer(api, keep_alive=True) as resource, \
            caplog.at_level(logging.DEBUG, "requests_oauthcc"):
        auth = ClientCredentialsAuth(tokens.url("/token"), CLIENT_ID, CLIENT_SECRET)
        assert requests.get(resource.url("/x"), auth=auth, timeout=10).status_code == 401
    assert len(issued) == 2
    records = [r.getMessage() for r in caplog.records]
    assert any("brand-new token" in line for line in records)
    for line in records:
        assert "\n" not in line and "\r" not in line, line[:300]
        assert len(line) < 2000, line[:300]


def test_a_token_echoed_as_a_scope_never_reaches_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token server that grants a ``scope`` holding the access token it issues, and an
    API whose challenge names that token as the ``scope`` it needs: no log record (the
    INFO per token, the DEBUG about insufficient_scope, the WARNING about rejected new
    tokens) holds any token."""
    issued: list[str] = []

    def token_endpoint(request: RawRequest) -> Script:
        issued.append(f"issued-token-{len(issued)}-Xq7Zr2Lp9")
        body = json.dumps({"access_token": issued[-1], "token_type": "Bearer",
                           "expires_in": 3600, "scope": f"read {issued[-1]}"}).encode()
        return [(0, raw_response(200, body, {"Content-Type": "application/json"}))]

    def api(request: RawRequest) -> Script:
        token = request.headers["authorization"].split()[1]
        challenge = (f'Bearer error="insufficient_scope", scope="{token}"'
                     if request.path == "/scoped" else "Bearer")
        return [(0, raw_response(401, b"", {"WWW-Authenticate": challenge}))]

    with RawServer(token_endpoint, keep_alive=True) as tokens, \
            RawServer(api, keep_alive=True) as resource, \
            caplog.at_level(logging.DEBUG, "requests_oauthcc"):
        auth = ClientCredentialsAuth(tokens.url("/token"), CLIENT_ID, CLIENT_SECRET)
        assert requests.get(resource.url("/scoped"), auth=auth, timeout=10).status_code == 401
        assert requests.get(resource.url("/x"), auth=auth, timeout=10).status_code == 401
    assert len(issued) == 2
    records = [r.getMessage() for r in caplog.records]
    assert any("insufficient_scope" in line for line in records)
    assert any("brand-new token" in line for line in records)
    for token in issued:
        assert not [line for line in records if token in line]


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster", "redis+sentinel"])
def test_a_malformed_redis_url_does_not_quote_its_password(scheme: str) -> None:
    """A password holding an unencoded ``/`` makes the URL unreadable: the ValueError
    says so without quoting any of the password (urllib's message quoted its start)."""
    pytest.importorskip("redis")
    from requests_oauthcc import RedisTokenCache

    with pytest.raises(ValueError) as caught:
        RedisTokenCache(f"{scheme}://user:pwStart/pwEnd@127.0.0.1:1/svc")
    error = caught.value
    assert "pw" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # no chained message
    assert "Percent-encode" in str(caught.value)


def test_a_secret_echoed_as_the_granted_scope_is_cut_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token server granting a scope that echoes the client secret: the token's scope
    and every log line carry ``[redacted]`` instead."""
    def token_endpoint(request: RawRequest) -> Script:
        body = json.dumps({"access_token": "opaque-token-value", "token_type": "Bearer",
                           "expires_in": 3600, "scope": f"read {CLIENT_SECRET}"}).encode()
        return [(0, raw_response(200, body, {"Content-Type": "application/json"}))]

    with RawServer(token_endpoint, keep_alive=True) as tokens, \
            caplog.at_level(logging.DEBUG, "requests_oauthcc"):
        auth = ClientCredentialsAuth(tokens.url("/token"), CLIENT_ID, CLIENT_SECRET)
        token = auth.fetch_token()
    assert token.scope == "read [redacted]"
    assert all(CLIENT_SECRET not in r.getMessage() for r in caplog.records)


def test_a_403_forbidding_one_resource_pauses_nothing() -> None:
    """With refresh_on=(401, 403), a resource that forbids this client (403 to every token,
    as django-oauth-toolkit answers a refused scope) does not pause the token requests a
    401 elsewhere needs: the revoked token is still replaced at once."""
    from .conftest import FakeClock

    def api(request: RawRequest) -> Script:
        status = 403 if request.path.startswith("/forbidden") else 401
        return [(0, raw_response(status, b"", {}))]

    clock = FakeClock()
    issued = []

    def token_endpoint(request: RawRequest) -> Script:
        issued.append(request)
        body = json.dumps({"access_token": f"token-{len(issued)}", "token_type": "Bearer",
                           "expires_in": 3600}).encode()
        return [(0, raw_response(200, body, {"Content-Type": "application/json"}))]

    with RawServer(token_endpoint, keep_alive=True) as tokens, \
            RawServer(api, keep_alive=True) as resource, requests.Session() as session:
        session.auth = ClientCredentialsAuth(tokens.url("/token"), CLIENT_ID, CLIENT_SECRET,
                                             refresh_on=(401, 403), clock=clock)
        session.auth.fetch_token()
        clock.advance(2)  # old enough for a 403 to cost a new token
        assert session.get(resource.url("/forbidden"), timeout=10).status_code == 403
        assert len(issued) == 2  # replaced once, refused again: 403 returned
        answer = session.get(resource.url("/revoked"), timeout=10)
        assert answer.status_code == 401 and len(answer.history) == 1
        assert len(issued) == 3, "the 401 was not paused by the 403s"
