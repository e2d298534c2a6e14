"""Resilience under faults: retries, fallback, TLS, fork, clocks, logging on the fast path."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    InvalidClientError,
    TokenEndpointConnectionError,
    TokenEndpointError,
    TokenRetry,
)
from requests_oauthcc.retry import parse_retry_after
from requests_oauthcc.testing import OAuthTestServer

from .certs import Pki, make_pki
from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, settle

MakeAuth = Callable[..., ClientCredentialsAuth]
FAST = TokenRetry(total=3, backoff_factor=0.01)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("requests_oauthcc") and r.levelno == level]


# -- retries --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(
    make_auth: MakeAuth, server: OAuthTestServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Two transient failures, then a token: three requests, two warnings, one INFO."""
    caplog.set_level(logging.INFO, logger="requests_oauthcc")
    server.queue_response(status, "busy", count=2)
    token = make_auth(retries=FAST).fetch_token()
    assert token.access_token
    assert server.token_requests == 3
    assert len(messages(caplog, logging.WARNING)) == 2
    [info] = messages(caplog, logging.INFO)
    assert "3 attempts" in info and CLIENT_ID in info and server.token_url in info


def test_retries_are_bounded_in_count(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """A server that keeps failing gets total+1 requests, then the error is raised."""
    server.queue_response(503, "busy", count=10)
    with pytest.raises(TokenEndpointError) as caught:
        make_auth(retries=FAST).fetch_token()
    assert caught.value.status_code == 503
    assert server.token_requests == 4


def test_retries_are_bounded_in_time(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """No retry starts past the deadline, however many retries are allowed."""
    server.queue_response(503, "busy", count=60)
    policy = TokenRetry(total=50, backoff_factor=0.1, backoff_max=0.1, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(TokenEndpointError):
        make_auth(retries=policy).fetch_token()
    assert time.monotonic() - started < 1.0 + 0.1 + 5  # last wait fits the deadline; slack
    assert 3 <= server.token_requests <= 21  # waits are 0.05 to 0.1 s: at most 20 fit in 1 s


def test_retries_zero_disables_retrying(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """retries=0: one request, the error at once."""
    server.queue_response(503, "busy", count=5)
    with pytest.raises(TokenEndpointError):
        make_auth(retries=0).fetch_token()
    assert server.token_requests == 1


def test_retry_after_seconds_is_honoured(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """A 429 with Retry-After: 1 waits at least about a second before the retry."""
    server.queue_response(429, "slow down", headers={"Retry-After": "1"})
    started = time.monotonic()
    make_auth(retries=FAST).fetch_token()
    assert time.monotonic() - started >= 0.9
    assert server.token_requests == 2


def test_retry_after_over_the_cap_ends_retrying(
    make_auth: MakeAuth, server: OAuthTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Retry-After longer than retry_after_max is not slept through: the error is raised,
    and a WARNING says why the retries stopped early."""
    server.queue_response(503, "maintenance", headers={"Retry-After": "3600"})
    with pytest.raises(TokenEndpointError, match="503"):
        make_auth(retries=FAST).fetch_token()
    assert server.token_requests == 1
    assert any("not retried: the server asks to wait (Retry-After) longer than "
               "retry_after_max=30s" in m for m in messages(caplog, logging.WARNING))


def test_retry_after_http_date_is_parsed() -> None:
    """Retry-After as an HTTP date gives the seconds until then; garbage gives None."""
    from email.utils import formatdate

    assert 8 <= (parse_retry_after(formatdate(time.time() + 10, usegmt=True)) or 0) <= 10
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None


def test_read_timeout_is_retried(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """A token request that times out is sent again and the second answer used."""
    server.queue_response(200, {"access_token": "too-late"}, delay=1.0)
    token = make_auth(retries=FAST, timeout=0.3).fetch_token()
    assert token.access_token != "too-late"
    assert server.token_requests == 2


def test_connection_refused_is_retried_then_raised(
    server: OAuthTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection errors are retried up to the limit, each retry logged, then raised."""
    url = server.token_url
    server.stop()
    auth = ClientCredentialsAuth(url, CLIENT_ID, CLIENT_SECRET, retries=FAST)
    with pytest.raises(TokenEndpointConnectionError):
        auth.fetch_token()
    assert len(messages(caplog, logging.WARNING)) == 3


def test_permanent_error_is_not_retried(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """invalid_client from the real check raises at once."""
    with pytest.raises(InvalidClientError):
        make_auth(client_secret="wrong", retries=FAST).fetch_token()
    assert server.token_requests == 1


# -- a failing endpoint while the token is still valid --------------------------------


def test_failed_early_refresh_uses_the_old_token_until_it_expires(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Endpoint down inside the leeway window: requests still succeed; after expiry, raise."""
    server.token_lifetime = 100
    session.auth = make_auth(clock=clock, leeway=10)
    session.get(server.resource_url)
    clock.advance(95)
    server.queue_response(503, "down", count=100)
    assert session.get(server.resource_url).status_code == 200
    settle(session.auth)  # the refresh runs ahead, in the background
    assert any("token refresh failed" in m for m in messages(caplog, logging.WARNING))
    clock.advance(6)
    with pytest.raises(TokenEndpointError):
        session.get(server.resource_url)


# -- transport security ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[OAuthTestServer]:
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, certfile=pki.server_cert,
                         keyfile=pki.server_key) as srv:
        yield srv


def test_tls_verification_stays_on(tls_server: OAuthTestServer) -> None:
    """A certificate from an unknown CA fails the token request at once (not retried)."""
    auth = ClientCredentialsAuth(tls_server.token_url, CLIENT_ID, CLIENT_SECRET, retries=FAST)
    with pytest.raises(TokenEndpointConnectionError) as caught:
        auth.fetch_token()
    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)
    assert tls_server.token_requests == 0


def test_token_session_carries_the_ca_bundle(
    tls_server: OAuthTestServer, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token Session's verify=<CA> is used even when REQUESTS_CA_BUNDLE says otherwise."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca-bundle.pem")
    token_session = requests.Session()
    token_session.verify = pki.ca
    auth = ClientCredentialsAuth(tls_server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 session=token_session)
    response = requests.get(tls_server.resource_url, auth=auth, verify=pki.ca, timeout=5)
    assert response.status_code == 200


# -- process model --------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_keeps_the_token_and_can_fetch_a_new_one(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """A child uses the inherited token, then fetches over its own fresh connections."""
    auth = make_auth()
    with requests.Session() as s:
        s.get(server.resource_url, auth=auth)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with requests.Session() as s:
                first = s.get(server.resource_url, auth=auth).status_code
                inherited = server.token_requests == 1
                new = auth.fetch_token()
                ok = first == 200 and inherited and new is auth.token
                code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.token_requests == 2
    with requests.Session() as s:  # the parent's own connections still work after the fork
        assert s.get(server.resource_url, auth=auth).status_code == 200


def test_wall_clock_jumps_do_not_move_expiry(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expiry runs on the monotonic clock: a day's jump of time.time() changes nothing."""
    session.auth = make_auth()
    session.get(server.resource_url)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86400)
    session.get(server.resource_url)
    monkeypatch.setattr(time, "time", lambda: real_time() - 86400)
    session.get(server.resource_url)
    assert server.token_requests == 1


def test_nothing_is_logged_on_the_fast_path(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a valid cached token, requests produce no log record of ours at any level."""
    session.auth = make_auth()
    session.get(server.resource_url)
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        session.get(server.resource_url)
    assert [r for r in caplog.records if r.name.startswith("requests_oauthcc")] == []
