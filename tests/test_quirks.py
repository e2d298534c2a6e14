"""Servers people actually run (issue #11): each deviation works, or has one narrow switch.

Every test talks to :class:`~tests.quirky.QuirkyServer` (or the local test server) on
127.0.0.1, configured to behave exactly as the deployed server the test names.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any
from urllib.parse import unquote, unquote_plus

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    DiscoveryError,
    InvalidClientError,
    InvalidTokenResponseError,
    TokenEndpointError,
)
from requests_oauthcc.client_auth import ClientSecretBasic
from requests_oauthcc.response import parse_token_response
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET
from .quirky import QuirkyServer
from .rawserver import RawServer, raw_response

AWKWARD_ID = "my client:+%/=~é"
AWKWARD_SECRET = "s3 cr+t:%/=?ü &#\"'<>"


def auth_for(server: QuirkyServer, **options: Any) -> ClientCredentialsAuth:
    options.setdefault("retries", 0)
    return ClientCredentialsAuth(server.token_url, options.pop("client_id", server.client_id),
                                 options.pop("client_secret", server.client_secret), **options)


def calls(url: str, auth: ClientCredentialsAuth, threads: int, seconds: float) -> list[int]:
    """Statuses of API calls made by ``threads`` threads for ``seconds`` seconds."""
    statuses: list[int] = []
    errors: list[BaseException] = []
    end = time.monotonic() + seconds

    def worker() -> None:
        with requests.Session() as session:
            while time.monotonic() < end:
                try:
                    statuses.append(session.get(url, auth=auth, timeout=10).status_code)
                except Exception as exc:
                    errors.append(exc)
                    return
                time.sleep(0.005)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 30)
    assert not errors, errors[:3]
    return statuses


# -- 1. expires_in: 0 ---------------------------------------------------------------------


def test_expires_in_zero_is_no_lifetime_with_one_warning(caplog: pytest.LogCaptureFixture,
                                                         ) -> None:
    """expires_in 0 (tokens that do not expire) is used until rejected, one WARNING per
    auth object (0.2.0 raised InvalidTokenResponseError on every call)."""
    caplog.set_level(logging.WARNING, logger="requests_oauthcc")
    with QuirkyServer(lifetime=None, expires_in="zero") as server:
        auth = auth_for(server)
        for _ in range(5):
            assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert server.token_requests == 1
        assert auth.token is not None and auth.token.expires_at is None
        auth.invalidate()
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert server.token_requests == 2
    warnings = [r for r in caplog.records if "expires_in 0" in r.getMessage()]
    assert len(warnings) == 1
    assert "used until the API rejects it" in warnings[0].getMessage()


def test_expires_in_zero_takes_default_lifetime() -> None:
    """With default_lifetime=, a token answered with expires_in 0 lives that long."""
    with QuirkyServer(lifetime=None, expires_in="zero") as server:
        auth = auth_for(server, default_lifetime=120)
        token = auth.fetch_token()
        assert token.lifetime == 120


@pytest.mark.parametrize("zero", [0, 0.0, "0", " 0 ", "0.0"])
def test_every_spelling_of_zero_is_no_lifetime(zero: object) -> None:
    """0 as a number, a float or a numeric string: all mean no lifetime given."""
    notes: list[str] = []
    token = parse_token_response({"access_token": "a", "expires_in": zero}, issued_at=5.0,
                                 notice=notes.append)
    assert token.expires_at is None and len(notes) == 1


def test_a_negative_lifetime_is_still_refused() -> None:
    """Negative expires_in means nothing: refused, as before."""
    with pytest.raises(InvalidTokenResponseError, match="0 or more"):
        parse_token_response({"access_token": "a", "expires_in": -1}, issued_at=0.0)


# -- 2. a bounded number of token requests, however the server answers --------------------


@pytest.mark.parametrize("rounding", ["floor", "ceil"])
def test_gateway_answering_the_same_token_counting_down(rounding: str) -> None:
    """A gateway keeping one token per client, expires_in counting down to 0 (rounded): over
    three lifetimes no call fails and the token requests stay a handful per lifetime
    (0.2.0: InvalidTokenResponseError surfaced on expires_in 0, a fetch per call before)."""
    with QuirkyServer(lifetime=2, expires_in=rounding, one_token=True) as server:
        auth = auth_for(server)
        statuses = calls(server.api_url, auth, threads=4, seconds=6.5)
        assert statuses and set(statuses) == {200}
        # 4 lifetimes at most (6.5 s / 2 s): one fetch each, the early refresh answered with
        # the same token, and at most one forced by a 401 at the very end of each.
        assert server.token_requests <= 4 * 3, server.token_requests
        assert len(statuses) > 20 * server.token_requests


@pytest.mark.parametrize(
    ("lifetime", "expires_in", "one_token"),
    [(0.4, "exact", False), (0.4, "ceil", False), (0.4, "floor", False),
     (1, "floor", True), (1, "zero", False), (3, "ceil", True)],
)
def test_token_requests_per_second_are_bounded(
    lifetime: float, expires_in: str, one_token: bool
) -> None:
    """However the server answers (tiny, rounded or zero lifetimes, the same token), one
    auth object makes about one token request per second beyond those forced by a 401,
    never one per API request, and no call fails."""
    with QuirkyServer(lifetime=lifetime, expires_in=expires_in, one_token=one_token) as server:
        auth = auth_for(server)
        started = time.monotonic()
        statuses = calls(server.api_url, auth, threads=8, seconds=3)
        elapsed = time.monotonic() - started
        assert set(statuses) == {200}
        unforced = server.token_requests - server.rejections
        assert unforced <= 1.5 * elapsed + 2, (server.token_requests, server.rejections)
        assert server.token_requests * 10 < len(statuses)


def test_a_refusing_token_endpoint_is_not_asked_once_per_call() -> None:
    """An endpoint refusing the client: each call fails at once with the same typed error,
    and the token requests stay about one per second, not one per call (0.3.0: one each)."""
    with QuirkyServer() as server, requests.Session() as session:
        session.auth = auth_for(server, client_secret="revoked-secret")
        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(InvalidClientError):
                session.get(server.api_url, timeout=10)
        time.sleep(1.1)
        with pytest.raises(InvalidClientError):
            session.get(server.api_url, timeout=10)
        elapsed = time.monotonic() - started
        assert 2 <= server.token_requests <= 2 + elapsed, (server.token_requests, elapsed)
        assert server.api_requests == 0


def test_an_explicit_fetch_or_invalidate_tries_again_at_once() -> None:
    """fetch_token() and invalidate() mean "ask now": not held back by a recent failure."""
    with QuirkyServer() as server:
        auth = auth_for(server, client_secret="revoked-secret")
        with pytest.raises(InvalidClientError):
            auth.fetch_token()
        with pytest.raises(InvalidClientError):
            auth.fetch_token()
        auth.invalidate()
        with pytest.raises(InvalidClientError):
            requests.get(server.api_url, auth=auth, timeout=10)
        assert server.token_requests == 3


def test_a_refused_replacement_is_not_asked_once_per_call() -> None:
    """The client was disabled: the API refuses its token and the endpoint refuses the
    client. After the first call, calls fail at once with the endpoint's error, and the
    token requests stay about one per second (0.3.0: one 401 and one token request each)."""
    with QuirkyServer() as server, requests.Session() as session:
        session.auth = auth_for(server)
        assert session.get(server.api_url, timeout=10).status_code == 200
        server.client_secret = "rotated-at-the-server"
        server.revoke_all()
        before, api_before = server.token_requests, server.api_requests
        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(InvalidClientError):
                session.get(server.api_url, timeout=10)
        elapsed = time.monotonic() - started
        assert server.token_requests - before <= 1 + elapsed, server.token_requests - before
        assert server.api_requests - api_before == 1  # the dead token is not sent again


def test_a_gateway_answering_the_rejected_token_again_is_not_resent() -> None:
    """The API refuses a token the gateway keeps answering: each call returns its 401 after
    one API request (no resend of the same value), and token requests stay about one per
    second."""
    with QuirkyServer(one_token=True, api_accepts=False) as server, \
            requests.Session() as session:
        session.auth = auth_for(server)
        started = time.monotonic()
        statuses = [session.get(server.api_url, timeout=10).status_code for _ in range(50)]
        elapsed = time.monotonic() - started
        assert statuses == [401] * 50
        assert server.api_requests == 50
        assert server.token_requests <= 2 + elapsed, (server.token_requests, elapsed)


def test_a_slow_endpoint_does_not_make_every_403_a_token_request() -> None:
    """A token is "young" from when it arrived, not from when it was asked for: with an
    endpoint taking 1.1 s and an API forbidding everything, most calls cost no token."""
    with QuirkyServer(api_accepts=False, reject_status=403, token_delay=1.1) as server, \
            requests.Session() as session:
        session.auth = auth_for(server, refresh_on=(401, 403))
        end = time.monotonic() + 4.5
        calls = 0
        while time.monotonic() < end:
            assert session.get(server.api_url, timeout=10).status_code == 403
            calls += 1
        assert calls >= 5 * server.token_requests, (calls, server.token_requests)


def test_a_redirect_chain_after_the_retry_is_not_retried_again() -> None:
    """An API answering each path's first request with 401 and the retry with a redirect
    to the next path, behind a gateway reissuing the same token: one call, no chain of
    retries (0.3.0: 31 retries, until TooManyRedirects)."""
    seen: dict[str, int] = {}

    def answer(request: Any) -> list[tuple[float, bytes]]:
        seen[request.path] = seen.get(request.path, 0) + 1
        if seen[request.path] == 1:
            return [(0, raw_response(401, b"", {"WWW-Authenticate": "Bearer"}))]
        step = int(request.path.strip("/p") or 0)
        return [(0, raw_response(302, b"", {"Location": f"/p{step + 1}"}))]

    with QuirkyServer(one_token=True) as server, RawServer(answer, keep_alive=True) as api:
        response = requests.get(api.url("/p0"), auth=auth_for(server), timeout=10)
        assert response.status_code == 401
        assert len(api.requests) <= 3, [r.path for r in api.requests]


def test_each_caller_gets_its_own_copy_of_a_shared_failure() -> None:
    """Callers sharing one failed fetch (or its one-second memory) each raise their own
    exception object: no caller's frames or context show in another's error."""
    with QuirkyServer() as server:
        auth = auth_for(server, client_secret="wrong")
        errors = []
        for _ in range(3):
            try:
                requests.get(server.api_url, auth=auth, timeout=10)
            except InvalidClientError as exc:
                errors.append(exc)
        assert len(errors) == 3 and len({id(e) for e in errors}) == 3
        assert len({str(e) for e in errors}) == 1 and "invalid_client" in str(errors[2])
        assert server.token_requests == 1
        depth = [len(__import__("traceback").extract_tb(e.__traceback__)) for e in errors]
        assert depth[1] == depth[2], depth
        assert all(e.__cause__ is errors[0].__cause__ for e in errors)


def test_a_failed_health_check_does_not_break_the_api_calls() -> None:
    """fetch_token() failing while the endpoint is down raises, and the held token (still
    good at the API) keeps serving every call (0.3.0 behaved so; an interim change did not)."""
    with QuirkyServer() as server, requests.Session() as session:
        auth = session.auth = auth_for(server)
        assert session.get(server.api_url, timeout=10).status_code == 200
        server.client_secret = "the endpoint refuses for now"
        with pytest.raises(InvalidClientError):
            auth.fetch_token()
        statuses = [session.get(server.api_url, timeout=10).status_code for _ in range(20)]
        assert statuses == [200] * 20


def test_unreplayable_bodies_against_a_gateway_reissuing_a_refused_token() -> None:
    """Uploads that cannot be sent twice, an API refusing the token a gateway keeps
    reissuing: each call gets its 401, and the token requests stay about one per second
    (found by an outside review: one per call)."""
    with QuirkyServer(one_token=True, api_accepts=False) as server, \
            requests.Session() as session:
        session.auth = auth_for(server)
        started = time.monotonic()
        statuses = [session.post(server.api_url, data=iter([b"chunk"]), timeout=10)
                    .status_code for _ in range(30)]
        elapsed = time.monotonic() - started
        assert statuses == [401] * 30
        assert server.token_requests <= 2 + elapsed, (server.token_requests, elapsed)


# -- 3. token_type spellings of API gateways -----------------------------------------------


def test_apigee_bearertoken_is_bearer() -> None:
    """Apigee Edge's "BearerToken" is accepted; the header sent says Bearer."""
    with QuirkyServer(token_type="BearerToken") as server:
        auth = auth_for(server)
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert auth.token is not None and auth.token.authorization.startswith("Bearer ")


@pytest.mark.parametrize("token_type", ["mac", "MAC", "DPoP", "Bearer-Token", "N_A",
                                        "BearerTo\u212aen"])
def test_other_token_types_stay_refused(token_type: str) -> None:
    """mac, DPoP (without DPoP configured) and unknown types are refused, naming the type."""
    with QuirkyServer(token_type=token_type) as server, pytest.raises(
            InvalidTokenResponseError, match="is not supported"):
        auth_for(server).fetch_token()


# -- 4. client_id in the body with HTTP Basic ---------------------------------------------


def test_client_id_in_body_with_basic() -> None:
    """A server requiring client_id next to Basic refuses the default and accepts
    client_id_in_body=True; the secret still travels only in the Basic header."""
    with QuirkyServer(require_client_id=True) as server:
        with pytest.raises(InvalidClientError):
            auth_for(server).fetch_token()
        auth = auth_for(server, client_id_in_body=True)
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert server.last_form.get("client_id") == [server.client_id]
        assert "client_secret" not in server.last_form


def test_client_id_in_extra_params_says_what_to_do() -> None:
    """The error for extra_params client_id names the switch, not a false reason."""
    with pytest.raises(ConfigurationError) as caught:
        ClientCredentialsAuth("https://as.example/token", "id", "secret",
                              extra_params={"client_id": "id"})
    message = str(caught.value)
    assert "client_id_in_body=True" in message and "is set by" not in message


@pytest.mark.parametrize("name", ["grant_type", "client_secret", "client_assertion",
                                  "client_assertion_type", "scope", "audience", "resource"])
def test_every_reserved_field_says_what_to_pass(name: str) -> None:
    """Each field the auth sets itself is refused with the argument to use instead."""
    with pytest.raises(ConfigurationError, match=f"may not set '{name}': ") as caught:
        ClientCredentialsAuth("https://as.example/token", "id", "secret",
                              extra_params={name: "x"})
    assert "secret'" not in str(caught.value).replace("'client_secret'", "")


# -- 5. spaces and other characters in Basic credentials ----------------------------------


@pytest.mark.parametrize("decoding", ["form", "percent"])
def test_awkward_basic_credentials_reach_both_decoding_styles(decoding: str) -> None:
    """An id and secret with spaces, +, %, :, /, = and non-ASCII are accepted by servers
    that form-decode Basic credentials and by those that only percent-decode them (Authlib;
    0.2.0 sent a space as '+', which those read as a plus)."""
    with QuirkyServer(client_id=AWKWARD_ID, client_secret=AWKWARD_SECRET,
                      basic=decoding) as server:
        auth = auth_for(server, auth_method="client_secret_basic")
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert server.refusals == []


@settings(max_examples=300, deadline=None)
@given(client_id=st.text(min_size=1).filter(lambda s: "\x00" not in s),
       secret=st.text(min_size=1).filter(lambda s: "\x00" not in s))
def test_basic_value_decodes_the_same_both_ways(client_id: str, secret: str) -> None:
    """For any id and secret, the Basic value decodes to them with unquote_plus (form rules)
    and with unquote (percent-decoding only)."""
    from hypothesis import assume

    assume(all(not 0xD800 <= ord(c) <= 0xDFFF for c in client_id + secret))
    parts = ClientSecretBasic(secret).authenticate(client_id, "https://as.example/token")
    user, _, password = base64.b64decode(
        parts.headers["Authorization"].removeprefix("Basic ")).decode("utf-8").partition(":")
    for decode in (unquote, unquote_plus):
        assert (decode(user), decode(password)) == (client_id, secret)


# -- 6. a hint when Basic credentials are refused -----------------------------------------


def test_refused_basic_with_encoded_characters_suggests_client_secret_post() -> None:
    """A server that does not decode Basic credentials refuses an awkward secret: the error
    says why and what to try, and quotes neither id nor secret."""
    with QuirkyServer(client_id="plain-id", client_secret=AWKWARD_SECRET,
                      basic="raw") as server:
        with pytest.raises(InvalidClientError) as caught:
            auth_for(server, client_id="plain-id", client_secret=AWKWARD_SECRET).fetch_token()
        message = str(caught.value)
        assert "the client_secret holds characters" in message
        assert "auth_method='client_secret_post'" in message
        assert AWKWARD_SECRET not in message and "s3 cr" not in message
        post = auth_for(server, client_id="plain-id", client_secret=AWKWARD_SECRET,
                        auth_method="client_secret_post")
        assert requests.get(server.api_url, auth=post, timeout=10).status_code == 200


def test_no_hint_when_nothing_was_encoded() -> None:
    """A plain id and secret that are simply wrong get no encoding hint."""
    with QuirkyServer(basic="raw") as server:
        with pytest.raises(InvalidClientError) as caught:
            auth_for(server, client_secret="wrong-but-plain").fetch_token()
        assert "client_secret_post" not in str(caught.value)


def test_bare_401_from_the_token_endpoint_gets_the_hint_too() -> None:
    """A 401 without an OAuth error body (some servers) gets the same hint."""
    with RawServer(lambda request: [(0, raw_response(401, b"Unauthorized"))]) as raw:
        auth = ClientCredentialsAuth(raw.url("/token"), "my id", "plain", retries=0)
        with pytest.raises(TokenEndpointError) as caught:
            auth.fetch_token()
    assert "the client_id holds characters" in str(caught.value)


# -- 7. metadata at the issuer-suffix location ---------------------------------------------


def test_metadata_at_the_issuer_suffix_location() -> None:
    """An issuer under /o publishing {issuer}/.well-known/oauth-authorization-server (as
    django-oauth-toolkit does with OpenID Connect off) is discovered, last."""
    with QuirkyServer(issuer_path="/o", metadata_at="suffix") as server:
        auth = ClientCredentialsAuth.from_issuer(server.issuer, server.client_id,
                                                 server.client_secret, retries=0)
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert f"token_url='{server.token_url}'" in repr(auth)


def test_issuer_suffix_metadata_is_checked_as_strictly() -> None:
    """The suffix document must name the very issuer asked for, as at any location."""
    with QuirkyServer(issuer_path="/o", metadata_at="suffix") as server:
        auth = ClientCredentialsAuth.from_issuer(server.issuer + "/tenant", server.client_id,
                                                 server.client_secret, retries=0)
        with pytest.raises(DiscoveryError, match="no metadata found"):
            auth.fetch_token()
    with OAuthTestServer(issuer_path="/o", catch_all=True, metadata=None) as other:
        # catch_all serves, at any well-known path, metadata for the issuer the path names:
        # the suffix path of /o names the issuer /o/.well-known/..., not /o
        auth = ClientCredentialsAuth.from_issuer(other.issuer.replace("https", "http"),
                                                 "test-client", "test-secret", retries=0)
        with pytest.raises(DiscoveryError):
            auth.fetch_token()


# -- 9. APIs that answer 403 to a dead token -----------------------------------------------


def test_403_for_a_revoked_token_is_retried_when_named() -> None:
    """django-oauth-toolkit's views answer a revoked token with 403 and no challenge: with
    refresh_on=(401, 403) the call succeeds by one retry and one new token."""
    with QuirkyServer(reject_status=403) as server:
        plain = auth_for(server)
        named = auth_for(server, refresh_on=(401, 403))
        for auth in (plain, named):
            assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        time.sleep(1.1)  # the tokens are older than MIN_REFRESH_INTERVAL
        server.revoke_all()
        before = server.token_requests
        assert requests.get(server.api_url, auth=plain, timeout=10).status_code == 403
        assert server.token_requests == before
        response = requests.get(server.api_url, auth=named, timeout=10)
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [403]
        assert server.token_requests == before + 1


def test_an_api_that_forbids_everything_costs_few_tokens(
    server: OAuthTestServer,
) -> None:
    """An API answering 403 to every call, with refresh_on naming 403: every call returns
    its 403 promptly, and the token requests stay about one per second, not one per call."""
    with RawServer(lambda request: [(0, raw_response(403, b"forbidden"))],
                   keep_alive=True) as api, requests.Session() as session:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                     refresh_on=(401, 403), retries=0)
        session.auth = auth
        started = time.monotonic()
        statuses = [session.get(api.url("/x"), timeout=10).status_code for _ in range(60)]
        time.sleep(1.1)
        statuses += [session.get(api.url("/x"), timeout=10).status_code for _ in range(60)]
        elapsed = time.monotonic() - started
    assert statuses == [403] * 120
    assert server.token_requests <= 2 + elapsed, (server.token_requests, elapsed)
    assert server.token_requests >= 2  # the old token was replaced once it was a second old


def test_403_insufficient_scope_is_never_retried(server: OAuthTestServer) -> None:
    """A 403 whose challenge says insufficient_scope: a new token cannot help, none is asked."""
    challenge = {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'}
    with RawServer(lambda request: [(0, raw_response(403, b"", challenge))],
                   keep_alive=True) as api:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                     refresh_on=(401, 403), retries=0)
        auth.fetch_token()
        time.sleep(1.1)
        response = requests.get(api.url("/x"), auth=auth, timeout=10)
    assert response.status_code == 403 and not response.history
    assert server.token_requests == 1


@pytest.mark.parametrize(
    ("refresh_on", "message"),
    [((403,), "must include 401"), ((401, 500), "401 and 403 only"), ("401", "collection"),
     (401, "collection"), ((401, True), "401 and 403 only"), ((401, "403"), "401 and 403 only"),
     ((401, 429), "401 and 403 only"), ((401, 400), "401 and 403 only")],
)
def test_refresh_on_is_checked(refresh_on: Any, message: str) -> None:
    """refresh_on takes 401, and 403 besides; anything else (a 429 or a 400 would resend
    requests the server may have acted on) is a clear error."""
    with pytest.raises(ConfigurationError, match=message):
        ClientCredentialsAuth("https://as.example/token", "id", "secret", refresh_on=refresh_on)


# -- the switches from the environment and the command line --------------------------------


def test_switches_from_the_environment() -> None:
    """OAUTH_CLIENT_ID_IN_BODY and OAUTH_REFRESH_ON reach the auth built by from_env."""
    with QuirkyServer(require_client_id=True, reject_status=403) as server:
        environ = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": server.client_id,
                   "OAUTH_CLIENT_SECRET": server.client_secret,
                   "OAUTH_CLIENT_ID_IN_BODY": "true", "OAUTH_REFRESH_ON": "403"}
        auth = ClientCredentialsAuth.from_env(environ=environ)
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        time.sleep(1.1)
        server.revoke_all()
        response = requests.get(server.api_url, auth=auth, timeout=10)
        assert response.status_code == 200 and [r.status_code for r in response.history] == [403]


@pytest.mark.parametrize(("name", "value"), [("OAUTH_CLIENT_ID_IN_BODY", "maybe"),
                                             ("OAUTH_REFRESH_ON", "403,404"),
                                             ("OAUTH_REFRESH_ON", "500"),
                                             ("OAUTH_REFRESH_ON", "4" * 5000)])
def test_bad_switches_in_the_environment_are_clear_errors(name: str, value: str) -> None:
    """A value the variable cannot mean is a ConfigurationError naming it."""
    environ = {"OAUTH_TOKEN_URL": "https://as.example/token", "OAUTH_CLIENT_ID": "id",
               "OAUTH_CLIENT_SECRET": "secret", name: value}
    with pytest.raises(ConfigurationError, match=r"REFRESH_ON|CLIENT_ID_IN_BODY|401 and 403"):
        ClientCredentialsAuth.from_env(environ=environ)


def test_cli_client_id_in_body() -> None:
    """`requests-oauthcc token --client-id-in-body` gets a token where Basic alone fails."""
    import os
    import subprocess
    import sys

    with QuirkyServer(require_client_id=True) as server:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OAUTH_")},
               "OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": server.client_id,
               "OAUTH_CLIENT_SECRET": server.client_secret}
        argv = [sys.executable, "-m", "requests_oauthcc", "token"]
        refused = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        accepted = subprocess.run([*argv, "--client-id-in-body"], capture_output=True,
                                  text=True, timeout=60, env=env)
    assert refused.returncode == 3, refused.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip()


# -- reading WWW-Authenticate -------------------------------------------------------------


def test_insufficient_scope_is_read_from_the_error_parameter_only() -> None:
    """Only the error parameter counts: the words in a description are not a code."""
    from requests_oauthcc.challenge import challenge_errors

    assert challenge_errors('Bearer error="insufficient_scope", scope="a b"') == {
        "insufficient_scope"}
    assert challenge_errors(
        'Bearer error="invalid_token", error_description="not insufficient_scope, '
        'error=insufficient_scope"') == {"invalid_token"}
    assert challenge_errors('Basic realm="x", Bearer error=Insufficient_Scope') == {
        "insufficient_scope"}
    assert challenge_errors("Bearer") == frozenset()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_challenge_header_is_read_without_error(header: str) -> None:
    """Whatever an API sends, reading it gives a set of lower-case codes, never an error."""
    from requests_oauthcc.challenge import challenge_errors

    codes = challenge_errors(header)
    assert all(code == code.lower() for code in codes)
