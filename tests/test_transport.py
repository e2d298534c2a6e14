"""transport.exchange: whole-request deadlines against trickling servers, error hygiene."""

from __future__ import annotations

import base64
import ssl
import time
import traceback
from collections.abc import Callable, Iterator
from urllib.parse import quote_plus

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    InsecureTransportError,
    InvalidTokenResponseError,
    Token,
    TokenEndpointConnectionError,
    TokenEndpointError,
    TokenRetry,
)
from requests_oauthcc.testing import OAuthTestServer
from requests_oauthcc.transport import exchange, total_seconds

from .certs import Pki, make_pki
from .conftest import CLIENT_ID, CLIENT_SECRET, in_threads
from .rawserver import RawRequest, RawServer, Script, trickle_body, trickle_headers

SLACK = 1.5
"""Seconds allowed past a deadline: thread wake-up and a loaded 2-core machine."""

INTERVAL = 0.2
"""Seconds between trickled bytes: far below every per-operation timeout used here."""

TRICKLES: dict[str, Callable[[RawRequest], Script]] = {
    "headers": lambda request: trickle_headers(INTERVAL),
    "body": lambda request: trickle_body(INTERVAL),
}


@pytest.fixture(params=sorted(TRICKLES))
def trickler(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    with RawServer(TRICKLES[request.param]) as server:
        yield server


@pytest.fixture(params=["private", "given"])
def session_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def auth_for(server: RawServer, session_kind: str = "private", **options: object
             ) -> ClientCredentialsAuth:
    options.setdefault("retries", 0)
    if session_kind == "given":
        options["session"] = requests.Session()
    return ClientCredentialsAuth(server.url("/token"), CLIENT_ID, CLIENT_SECRET,
                                 **options)  # type: ignore[arg-type]


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """What ``call`` returned or raised, and how many seconds it took."""
    started = time.monotonic()
    try:
        outcome: object = call()
    except Exception as exc:
        outcome = exc
    return outcome, time.monotonic() - started


# -- the whole request is bounded ----------------------------------------------------------


def test_timeout_bounds_a_trickled_token_request_whole(
    trickler: RawServer, session_kind: str
) -> None:
    """A server sending its headers or its body one byte every 0.2 s (each read well
    within the timeout) cannot hold a fetch with timeout=1 beyond 1 s + slack, with the
    private token Session or a Session given as session=. (0.2.0: 8 to 12 s, then a token.)"""
    auth = auth_for(trickler, session_kind, timeout=1)
    outcome, elapsed = timed(auth.fetch_token)
    assert elapsed < 1 + SLACK, elapsed
    assert isinstance(outcome, TokenEndpointConnectionError)
    assert "Timeout" in str(outcome) and "within 1s" in str(outcome)


def test_connect_plus_read_bounds_the_whole_request() -> None:
    """timeout=(connect, read) bounds the whole request by connect + read."""
    with RawServer(TRICKLES["headers"]) as server:
        auth = auth_for(server, timeout=(0.5, 1.0))
        outcome, elapsed = timed(auth.fetch_token)
    assert isinstance(outcome, TokenEndpointConnectionError)
    assert 1.4 < elapsed < 1.5 + SLACK, elapsed


def test_a_given_session_is_not_modified() -> None:
    """Keeping the deadline changes nothing on a Session given as session=."""
    session = requests.Session()
    adapters, hooks = dict(session.adapters), {k: list(v) for k, v in session.hooks.items()}
    headers, proxies = dict(session.headers), dict(session.proxies)
    with RawServer(TRICKLES["headers"]) as server:
        auth = ClientCredentialsAuth(server.url("/token"), CLIENT_ID, CLIENT_SECRET,
                                     session=session, timeout=0.5, retries=0)
        with pytest.raises(TokenEndpointConnectionError):
            auth.fetch_token()
    assert dict(session.adapters) == adapters and session.hooks == hooks
    assert dict(session.headers) == headers and session.proxies == proxies


def test_tls_trickle_is_bounded_too(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Over https, a header trickle is cut at the deadline as over http."""
    pki: Pki = make_pki(tmp_path_factory.mktemp("pki"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    with RawServer(TRICKLES["headers"], context=context) as server:
        session = requests.Session()
        session.verify = pki.ca
        auth = auth_for(server, session=session, timeout=1)
        outcome, elapsed = timed(auth.fetch_token)
    assert isinstance(outcome, TokenEndpointConnectionError), outcome
    assert elapsed < 1 + SLACK, elapsed


def test_retry_deadline_cuts_the_attempt_in_progress(trickler: RawServer) -> None:
    """TokenRetry.deadline bounds the whole fetch: an attempt running at the deadline is
    cut off, whatever the timeout. (0.2.0 let it run: 8 to 12 s.)"""
    policy = TokenRetry(total=3, backoff_factor=0.01, deadline=2)
    auth = auth_for(trickler, timeout=30, retries=policy)
    outcome, elapsed = timed(auth.fetch_token)
    assert isinstance(outcome, TokenEndpointConnectionError)
    assert elapsed < 2 + SLACK, elapsed
    assert len(trickler.requests) == 1


def test_the_last_retry_gets_only_the_time_left(trickler: RawServer) -> None:
    """With timeout=1, retries=3 and deadline=2, the second attempt is cut at the deadline
    and no third one starts: about 2 s in all. (0.2.0: up to four 8-second attempts.)"""
    policy = TokenRetry(total=3, backoff_factor=0.01, deadline=2)
    auth = auth_for(trickler, timeout=1, retries=policy)
    outcome, elapsed = timed(auth.fetch_token)
    assert isinstance(outcome, TokenEndpointConnectionError)
    assert elapsed < 2 + SLACK, elapsed
    assert 2 <= len(trickler.requests) <= 3


def test_threads_waiting_on_a_trickled_fetch_wait_no_longer_than_it(
    trickler: RawServer,
) -> None:
    """16 threads sharing one trickled fetch all end within its bound, with its error."""
    auth = auth_for(trickler, timeout=1)
    started = time.monotonic()
    results = in_threads(16, auth.fetch_token)
    elapsed = time.monotonic() - started
    assert elapsed < 1 + SLACK, elapsed
    assert len(results) == 16 and len(trickler.requests) == 1
    assert all(isinstance(r, TokenEndpointConnectionError) for r in results)


def test_a_complete_answer_is_not_cut(server: OAuthTestServer) -> None:
    """An answer within the deadline is used, and repeated fetches leave no thread behind."""
    import threading

    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, timeout=0.5)
    for _ in range(20):
        assert isinstance(auth.fetch_token(), Token)
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name == "requests-oauthcc-deadline"]


def test_total_seconds() -> None:
    """A float is the whole bound; a (connect, read) pair bounds by its sum."""
    assert total_seconds(2) == 2.0
    assert total_seconds((0.5, 1.5)) == 2.0


# -- the https rule and error hygiene ---------------------------------------------------------


def test_exchange_refuses_plain_http_to_a_remote_host() -> None:
    """The https rule holds in the transport itself, before anything is sent."""
    def fail(message: str, response: requests.Response | None) -> TokenEndpointConnectionError:
        raise AssertionError("nothing may be sent")

    with pytest.raises(InsecureTransportError, match="plain http"):
        exchange(requests.Session(), "GET", "http://as.example.com/.well-known/x",
                 headers={}, timeout=1, fail=fail)


def secret_forms() -> list[str]:
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return [CLIENT_SECRET, quote_plus(CLIENT_SECRET), basic]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_connection_errors_carry_no_frames_and_no_credentials(
    server: OAuthTestServer, method: str
) -> None:
    """A connection error raised inside requests/urllib3 is chained without its frames (whose
    locals hold the request headers and body) and with a scrubbed request: a traceback
    captured with locals, as error reporters do, shows no credential in any form.
    (0.2.0: http.client's frames showed the Authorization header.)"""
    url = server.token_url
    server.stop()
    auth = ClientCredentialsAuth(url, CLIENT_ID, CLIENT_SECRET, auth_method=method, retries=0)
    with pytest.raises(TokenEndpointConnectionError) as caught:
        auth.fetch_token()
    error = caught.value
    text = "".join(traceback.TracebackException.from_exception(
        error, capture_locals=True).format())
    for form in secret_forms():
        assert form not in text
    chained: list[BaseException] = []
    link = error.__cause__
    while link is not None:
        chained.append(link)
        link = link.__cause__ or link.__context__
    assert chained and all(link.__traceback__ is None for link in chained)
    cause = error.__cause__
    assert isinstance(cause, requests.ConnectionError)
    assert isinstance(cause.request, requests.PreparedRequest)
    assert "Authorization" not in cause.request.headers
    assert CLIENT_SECRET not in str(cause.request.body)


# -- no redirect machinery -------------------------------------------------------------------


def test_a_redirect_answer_keeps_no_copy_of_the_request(server: OAuthTestServer) -> None:
    """A 3xx from the token endpoint is an error whose response has no ``next`` request:
    requests' Session.send kept a copy of the token request there, form body with the
    client secret included, even with redirects off. (0.2.0: response.next.body held it.)"""
    server.queue_response(307, b"", headers={"Location": server.url("/elsewhere")})
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, retries=0,
                                 auth_method="client_secret_post")
    with pytest.raises(TokenEndpointError, match="never follow redirects") as caught:
        auth.fetch_token()
    response = caught.value.response
    assert response is not None and response.next is None
    assert isinstance(response.request, requests.PreparedRequest)
    assert CLIENT_SECRET not in str(response.request.body)


def test_a_location_that_is_not_utf8_is_a_typed_error(server: OAuthTestServer) -> None:
    """A redirect whose Location is not UTF-8 is a TokenEndpointError, not the
    UnicodeDecodeError requests raised while preparing to follow it. (Found by fuzzing.)"""
    server.queue_response(301, b"", headers={"Location": "\x80"})
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, retries=0)
    with pytest.raises(TokenEndpointError, match="redirect"):
        auth.fetch_token()


def test_a_redirect_body_is_read_no_further_than_the_cap() -> None:
    """A 3xx with an endless body is refused after 1 MiB, at once: requests read a 3xx body
    whole (to release the connection) whatever stream= said."""
    chunk = b"x" * 65536

    def endless(request: RawRequest) -> Script:
        yield 0, b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n"
        for _ in range(100_000):  # 6 GiB, sent as fast as it is read
            yield 0, chunk

    with RawServer(endless) as server:
        auth = auth_for(server, timeout=20)
        outcome, elapsed = timed(auth.fetch_token)
    assert isinstance(outcome, InvalidTokenResponseError), outcome
    assert "over 1048576 bytes" in str(outcome) and elapsed < 5


def test_session_hooks_see_a_scrubbed_request(server: OAuthTestServer) -> None:
    """Response hooks of a Session given as session= run, and see the token request without
    its credentials (a logging hook cannot leak them). Its cookies are kept as usual."""
    seen: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, **kwargs: seen.append(r.request))
    for method in ("client_secret_basic", "client_secret_post"):
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                     auth_method=method, session=session)
        auth.fetch_token()
    assert len(seen) == 2
    for request in seen:
        assert "Authorization" not in request.headers
        assert CLIENT_SECRET not in str(request.body)


def test_an_unreachable_endpoint_is_named_by_its_root_cause() -> None:
    """A newcomer saw '...Failed to establish a new connection: [Errn...': urllib3's
    wrappers filled the bounded message. The message now ends with the root cause."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    auth = ClientCredentialsAuth(f"http://127.0.0.1:{port}/token", "c", "s", retries=0)
    with pytest.raises(TokenEndpointConnectionError) as caught:
        auth.fetch_token()
    assert str(caught.value).endswith(
        "(ConnectionRefusedError: [Errno 111] Connection refused)"), str(caught.value)
