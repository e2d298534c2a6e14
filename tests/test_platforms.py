"""Client assertions from the platform (issue #13): Kubernetes service account tokens,
Entra ID workload identity, GitHub Actions OIDC ID tokens.

The GitHub token service is played by real loopback servers: ``OIDCServer`` answers as
GitHub's does (``{"value": "<jwt>"}`` for the right bearer request token), RawServer
misbehaves on a schedule. Token files are real files.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import multiprocessing
import os
import pickle
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import requests_oauthcc
from requests_oauthcc import ConfigurationError, CredentialError, InsecureTransportError
from requests_oauthcc._peek import peek
from requests_oauthcc.platforms import (
    KUBERNETES_TOKEN_PATH,
    GitHubActionsOIDC,
    WorkloadIdentity,
    entra_workload_identity,
    kubernetes_token,
)
from requests_oauthcc.redaction import SensitiveText
from requests_oauthcc.sources import AssertionFile

from .conftest import FakeClock, in_threads
from .loopback import LoopbackServer
from .rawserver import RawRequest, RawServer, Script, huge_body, raw_response, trickle_body

REQUEST_TOKEN = "ghs-request-token-Qv7pL2xR9wZt"  # distinctive, so leak checks can find it
DEFAULT_AUDIENCE = "https://github.com/octo-org"


def make_jwt(claims: dict[str, Any]) -> str:
    """A JWS compact serialization with these claims and a random (unverified) signature."""
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return ".".join((part({"alg": "RS256", "typ": "JWT", "kid": "k1"}), part(claims),
                     secrets.token_urlsafe(48)))


def claims_of(token: str) -> dict[str, Any]:
    return dict(peek(token)[1])


# -- a GitHub Actions token service on loopback ----------------------------------------------


class OIDCServer(LoopbackServer):
    """GitHub's OIDC token service: ``GET /idtoken?api-version=2.0[&audience=...]`` with
    ``Authorization: Bearer REQUEST_TOKEN`` gives ``{"value": <jwt>}`` whose ``iat`` is
    ``clock()`` and ``exp`` ``iat + lifetime`` (no ``exp`` when ``lifetime`` is None).
    A wrong bearer token gets a 401 echoing the header it came with. ``delay``: seconds
    before answering. ``seen``: ``(path, headers)`` of each request; ``issued``: the JWTs."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 lifetime: float | None = 300, delay: float = 0.0) -> None:
        self.clock, self.lifetime, self.delay = clock, lifetime, delay
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.issued: list[str] = []
        self._lock = threading.Lock()
        super().__init__(_oidc_handler(self))

    @property
    def request_url(self) -> str:
        return self.base_url + "/idtoken?api-version=2.0"

    @property
    def requests(self) -> int:
        return len(self.seen)

    def environ(self, url: str | None = None) -> dict[str, str]:
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": url or self.request_url,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        time.sleep(self.delay)
        with self._lock:
            self.seen.append((path, headers))
            authorization = headers.get("Authorization", "")
            if authorization != f"Bearer {REQUEST_TOKEN}":
                return 401, json.dumps({"message": f"bad token in {authorization}"}).encode()
            audience = parse_qs(urlsplit(path).query).get("audience", [DEFAULT_AUDIENCE])[0]
            now = self.clock()
            claims: dict[str, Any] = {
                "iss": "https://token.actions.githubusercontent.com", "aud": audience,
                "sub": "repo:octo-org/octo-repo:ref:refs/heads/main", "iat": int(now),
                "jti": secrets.token_hex(8)}
            if self.lifetime is not None:
                claims["exp"] = now + self.lifetime
            token = make_jwt(claims)
            self.issued.append(token)
        return 200, json.dumps({"count": 1, "value": token}).encode()


def _oidc_handler(server: OIDCServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = server.answer(self.path, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def wall_clock() -> FakeClock:
    """A wall clock (seconds since the epoch) moved by hand, shared by server and client."""
    return FakeClock(time.time())


@pytest.fixture
def oidc(wall_clock: FakeClock) -> Iterator[OIDCServer]:
    with OIDCServer(clock=wall_clock) as server:
        yield server


def raw_environ(server: RawServer, path: str = "/idtoken?api-version=2.0") -> dict[str, str]:
    return {"ACTIONS_ID_TOKEN_REQUEST_URL": server.url(path),
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}


def failure_of(source: GitHubActionsOIDC) -> CredentialError:
    """The CredentialError a call raises (the test fails if it returns)."""
    with pytest.raises(CredentialError) as info:
        source()
    return info.value


def chain_text(exc: BaseException) -> str:
    """str and repr of ``exc`` and of every exception chained to it."""
    texts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


# -- GitHub Actions: the request -------------------------------------------------------------


def test_fetches_the_id_token_the_way_actions_core_does(
    oidc: OIDCServer, wall_clock: FakeClock
) -> None:
    """GET <url>&audience=<percent-encoded aud> with the bearer request token and
    Accept: application/json; the JSON "value" comes back as SensitiveText."""
    source = GitHubActionsOIDC("api://my app/x?y", environ=oidc.environ(), clock=wall_clock)
    token = source()
    assert isinstance(token, SensitiveText) and token == oidc.issued[0]
    path, headers = oidc.seen[0]
    assert path == "/idtoken?api-version=2.0&audience=api%3A%2F%2Fmy%20app%2Fx%3Fy"
    assert headers["Authorization"] == f"Bearer {REQUEST_TOKEN}"
    assert headers["Accept"] == "application/json"
    assert claims_of(token)["aud"] == "api://my app/x?y"
    source.close()


@pytest.mark.parametrize(("path", "audience", "expected"), [
    ("/idtoken", "aud", "/idtoken?audience=aud"),
    ("/idtoken?api-version=2.0", None, "/idtoken?api-version=2.0"),
    ("/idtoken?api-version=2.0", "", "/idtoken?api-version=2.0"),
])
def test_audience_joins_any_request_url(
    oidc: OIDCServer, wall_clock: FakeClock, path: str, audience: str | None, expected: str
) -> None:
    """A URL without a query gets "?audience="; no audience (None, or "" as in
    @actions/core) sends the URL as it is, and GitHub's default audience comes back."""
    source = GitHubActionsOIDC(audience, environ=oidc.environ(oidc.base_url + path),
                               clock=wall_clock)
    token = source()
    assert oidc.seen[0][0] == expected
    assert claims_of(token)["aud"] == (audience or DEFAULT_AUDIENCE)
    assert source.audience == (audience or None)
    source.close()


def test_environment_is_read_from_os_environ_by_default(
    oidc: OIDCServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without environ=, the variables come from os.environ, read at construction."""
    for name, value in oidc.environ().items():
        monkeypatch.setenv(name, value)
    source = GitHubActionsOIDC("aud")
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    assert source() == oidc.issued[0]
    source.close()


def test_given_session_is_used_and_sees_no_request_token(oidc: OIDCServer) -> None:
    """A session= is used for the request (its hooks run), its response's request carries
    no Authorization, and close() leaves that Session to its owner."""
    seen: list[requests.PreparedRequest] = []
    with requests.Session() as session:
        session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
        source = GitHubActionsOIDC("aud", environ=oidc.environ(), session=session)
        source()
        source.close()
        assert len(seen) == 1 and "Authorization" not in seen[0].headers
        assert session.get(oidc.request_url, timeout=5).status_code == 401  # still open
    assert oidc.requests == 2


def test_close_ends_the_private_session_and_a_later_call_makes_another(
    oidc: OIDCServer, wall_clock: FakeClock
) -> None:
    """close() closes the Session it made; a call after it works with a new one."""
    source = GitHubActionsOIDC(environ=oidc.environ(), clock=wall_clock)
    source()
    first = source._session
    assert first is not None
    source.close()
    assert getattr(source, "_session") is None  # noqa: B009 - a call: narrowing must not stick
    wall_clock.advance(1000)
    source()
    assert source._session is not None and source._session is not first
    assert oidc.requests == 2
    source.close()


# -- GitHub Actions: keeping the token -------------------------------------------------------


@pytest.mark.parametrize(("lifetime", "margin"), [(300, 60), (3600, 360)])
def test_token_is_kept_until_the_margin_before_exp(
    wall_clock: FakeClock, lifetime: float, margin: float
) -> None:
    """N calls make one request until max(60 s, 10% of the lifetime) before exp; the
    next call makes one more, whose token is then kept in turn."""
    with OIDCServer(clock=wall_clock, lifetime=lifetime) as server:
        source = GitHubActionsOIDC(environ=server.environ(), clock=wall_clock)
        first = {source() for _ in range(5)}
        wall_clock.advance(lifetime - margin - 1)
        first |= {source() for _ in range(5)}
        assert server.requests == 1 and len(first) == 1
        wall_clock.advance(2)
        second = {source() for _ in range(5)}
        assert server.requests == 2 and len(second) == 1 and second != first
        source.close()


def test_token_living_less_than_the_margin_is_handed_out_but_not_kept(
    wall_clock: FakeClock,
) -> None:
    """A token valid for 30 s (under the 60 s margin) is returned, and each call asks
    again."""
    with OIDCServer(clock=wall_clock, lifetime=30) as server:
        source = GitHubActionsOIDC(environ=server.environ(), clock=wall_clock)
        tokens = [source(), source()]
        assert tokens == server.issued and server.requests == 2
        source.close()


def test_token_expiring_within_five_seconds_is_refused(wall_clock: FakeClock) -> None:
    """A token that expires within 5 s is never handed out: CredentialError saying when
    it expires and to check the clock, without the token."""
    with OIDCServer(clock=wall_clock, lifetime=4) as server:
        source = GitHubActionsOIDC(environ=server.environ(), clock=wall_clock)
        error = failure_of(source)
        assert "expires in 4s" in str(error) and "clock" in str(error)
        assert server.issued[0] not in chain_text(error)
        source.close()


def test_token_already_expired_by_the_local_clock_is_refused(wall_clock: FakeClock) -> None:
    """A machine clock ahead of GitHub's sees the token as expired: refused, saying how
    long ago."""
    with OIDCServer(clock=wall_clock, lifetime=300) as server:
        ahead = FakeClock(wall_clock.now + 400)
        error = failure_of(GitHubActionsOIDC(environ=server.environ(), clock=ahead))
        assert "100s ago" in str(error)


def test_token_without_exp_is_handed_out_and_not_kept(
    wall_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A token with no exp claim is returned; it is not kept (each call fetches) and a
    warning says so."""
    with OIDCServer(clock=wall_clock, lifetime=None) as server:
        source = GitHubActionsOIDC(environ=server.environ(), clock=wall_clock)
        with caplog.at_level(logging.WARNING):
            assert [source(), source()] == server.issued
        assert "no exp claim" in caplog.text
        source.close()


def test_sixteen_threads_at_once_make_one_request(wall_clock: FakeClock) -> None:
    """16 threads calling together while the token service takes 0.3 s: one request, and
    every thread gets its token."""
    with OIDCServer(clock=wall_clock, delay=0.3) as server:
        source = GitHubActionsOIDC(environ=server.environ(), clock=wall_clock)
        results = in_threads(16, source)
        assert server.requests == 1
        assert results == [server.issued[0]] * 16
        source.close()


# -- GitHub Actions: a token service that misbehaves -----------------------------------------


def _jwt_body() -> bytes:
    return json.dumps({"value": make_jwt({"exp": time.time() + 300})}).encode()


@pytest.mark.parametrize("script", [
    lambda: trickle_body(0.5, body=_jwt_body()),
    lambda: [(0, b"HTTP/1.1 200 OK\r\n"), *((0.5, b"X") for _ in range(40))],
])
def test_timeout_bounds_the_whole_request(script: Callable[[], Script]) -> None:
    """A service sending a byte every 0.5 s (in the body or the headers) never trips a
    per-read timeout; timeout=1 still ends the call in about a second, with a
    CredentialError."""
    with RawServer(lambda request: script()) as server:
        source = GitHubActionsOIDC(timeout=1.0, environ=raw_environ(server))
        started = time.monotonic()
        error = failure_of(source)
        elapsed = time.monotonic() - started
        source.close()
    assert 0.9 < elapsed < 4, elapsed
    assert "Timeout" in str(error) and "GitHub Actions ID token" in str(error)


def test_redirect_is_not_followed(oidc: OIDCServer) -> None:
    """A 302 to another server is an error naming the redirect; the request token never
    reaches the other server."""
    def redirect(request: RawRequest) -> Script:
        return [(0, raw_response(302, headers={"Location": oidc.request_url}))]

    with RawServer(redirect) as server:
        source = GitHubActionsOIDC("aud", environ=raw_environ(server))
        error = failure_of(source)
        source.close()
    assert "302, a redirect" in str(error) and "not followed" in str(error)
    assert oidc.requests == 0


def test_refused_request_token_is_explained_and_redacted() -> None:
    """A 401 whose body echoes the Authorization header: the message gives the status and
    why (the request token is valid only during its job), the echo redacted."""
    def refuse(request: RawRequest) -> Script:
        echo = json.dumps({"message": f"bad {request.headers['authorization']}"}).encode()
        return [(0, raw_response(401, echo))]

    with RawServer(refuse) as server:
        source = GitHubActionsOIDC(environ=raw_environ(server))
        error = failure_of(source)
        source.close()
    message = str(error)
    assert "answered 401" in message and "ACTIONS_ID_TOKEN_REQUEST_TOKEN" in message
    assert "[redacted]" in message
    assert REQUEST_TOKEN not in chain_text(error)


def test_server_error_text_is_cleaned() -> None:
    """A 500's text comes into the message stripped of control characters and cut short."""
    body = b"database\x1b[31m down\r\nForged: log line " + b"x" * 1000
    with RawServer(lambda request: [(0, raw_response(500, body))]) as server:
        source = GitHubActionsOIDC(retries=0, environ=raw_environ(server))
        message = str(failure_of(source))
        source.close()
    assert "answered 500 (database [31m down Forged: log line" in message
    assert "\x1b" not in message and "\n" not in message and len(message) < 400


@pytest.mark.parametrize("size", [100_000, 50 << 20])
def test_huge_answer_is_refused_unread(size: int) -> None:
    """A 200 declaring 100 kB (over the 64 KiB cap, under the 1 MiB of token answers) or
    50 MiB: refused at once, without reading it."""
    with RawServer(lambda request: huge_body(size, status=200)) as server:
        source = GitHubActionsOIDC(environ=raw_environ(server))
        started = time.monotonic()
        error = failure_of(source)
        elapsed = time.monotonic() - started
        source.close()
    assert "more than 65536 bytes" in str(error)
    assert elapsed < 3


@pytest.mark.parametrize(("body", "said"), [
    (b"<html>sign in</html>", "not with a JSON object"),
    (b"[1, 2]", "not with a JSON object"),
    (b'{"val": "x"}', 'no "value" string'),
    (b'{"value": 3}', 'no "value" string'),
    (b'{"value": ""}', 'no "value" string'),
    (b'{"value": "secret-looking value"}', "not a JWT"),
    (b'{"value": "eyJ.eyJ.sig"}', "not a usable JWT"),
    (b'{"value": "' + b"a" * 20000 + b'.b.c"}', "not a JWT"),
])
def test_answer_without_a_jwt_value_is_refused(body: bytes, said: str) -> None:
    """Not JSON, not an object, no "value", a value that is not a JWT: CredentialError
    saying which, never quoting the body."""
    with RawServer(lambda request: [(0, raw_response(200, body))]) as server:
        source = GitHubActionsOIDC(environ=raw_environ(server))
        error = failure_of(source)
        source.close()
    assert said in str(error)
    assert "secret-looking" not in chain_text(error) and "aaaaaaaa" not in str(error)


def test_unreachable_service_is_a_credential_error() -> None:
    """Connection refused: CredentialError saying the service could not be reached."""
    with RawServer(lambda request: []) as server:
        environ = raw_environ(server)
    # the server has gone: its port is closed
    source = GitHubActionsOIDC(retries=0, environ=environ)
    error = failure_of(source)
    source.close()
    assert "could not reach" in str(error)
    assert REQUEST_TOKEN not in chain_text(error)


# -- GitHub Actions: configuration -----------------------------------------------------------


@pytest.mark.parametrize(("environ", "named"), [
    ({}, ["ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are"]),
    ({"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x.example/t"},
     ["ACTIONS_ID_TOKEN_REQUEST_TOKEN is"]),
    ({"ACTIONS_ID_TOKEN_REQUEST_URL": " ", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN},
     ["ACTIONS_ID_TOKEN_REQUEST_URL is"]),
])
def test_missing_variables_name_the_workflow_permission(
    environ: dict[str, str], named: list[str]
) -> None:
    """Missing (or blank) variables: ConfigurationError naming each, and saying the job
    needs `permissions: id-token: write`; the request token is not shown."""
    with pytest.raises(ConfigurationError) as info:
        GitHubActionsOIDC(environ=environ)
    message = str(info.value)
    assert all(name in message for name in named)
    assert "permissions: id-token: write" in message
    assert REQUEST_TOKEN not in message


@pytest.mark.parametrize(("url", "error"), [
    ("ftp://x.example/idtoken", ConfigurationError),
    ("https://user:pw@x.example/idtoken", ConfigurationError),
    ("http://actions.example/idtoken?api-version=2.0", InsecureTransportError),
])
def test_unusable_request_url_is_refused_at_construction(
    url: str, error: type[Exception]
) -> None:
    """A URL that is not http(s), holds user info, or is plain http to a host that is not
    loopback is refused before any request token is sent."""
    with pytest.raises(error) as info:
        GitHubActionsOIDC(environ={"ACTIONS_ID_TOKEN_REQUEST_URL": url,
                                   "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN})
    assert REQUEST_TOKEN not in str(info.value) and "pw" not in str(info.value)


@pytest.mark.parametrize("options", [
    {"audience": 3}, {"timeout": 0}, {"timeout": float("nan")}, {"timeout": True},
    {"session": "not a session"},
])
def test_unusable_options_are_refused(oidc: OIDCServer, options: dict[str, Any]) -> None:
    """A non-string audience, a timeout that is not a positive number, or a session that
    is not a requests.Session: ConfigurationError."""
    with pytest.raises(ConfigurationError):
        GitHubActionsOIDC(environ=oidc.environ(), **options)


def test_request_token_that_cannot_be_a_header_is_refused_unshown(oidc: OIDCServer) -> None:
    """A request token with a line break inside could forge headers: refused at
    construction, without quoting it."""
    environ = {**oidc.environ(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "abc\r\nX-Evil: 1"}
    with pytest.raises(ConfigurationError) as info:
        GitHubActionsOIDC(environ=environ)
    assert "X-Evil" not in str(info.value)
    assert oidc.requests == 0


# -- GitHub Actions: nothing leaks -----------------------------------------------------------


def test_neither_token_reaches_messages_reprs_or_logs(
    oidc: OIDCServer, wall_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a success, a refusal and a bad answer, with logging at DEBUG: no log
    record, message, repr or chained error holds the request token or an ID token."""
    shown: list[str] = []
    with caplog.at_level(logging.DEBUG):
        source = GitHubActionsOIDC("aud", environ=oidc.environ(), clock=wall_clock)
        token = source()
        shown += [repr(source), str(source), repr(token), f"{token}", repr(source._held)]
        wrong = GitHubActionsOIDC(environ={**oidc.environ(),
                                           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "other-token-1"})
        shown.append(chain_text(failure_of(wrong)))
        body = json.dumps({"value": token + "?"}).encode()
        with RawServer(lambda request: [(0, raw_response(200, body))]) as server:
            bad = GitHubActionsOIDC(environ=raw_environ(server))
            shown.append(chain_text(failure_of(bad)))
        for item in (source, wrong, bad):
            item.close()
    everything = "\n".join(shown) + caplog.text
    assert "got a GitHub Actions ID token for audience aud" in caplog.text
    for secret in (REQUEST_TOKEN, token, token.split(".")[2]):
        assert secret not in everything


def test_repr_shows_audience_and_url_without_query(oidc: OIDCServer) -> None:
    """repr names the audience and the request URL without its query; not the token."""
    source = GitHubActionsOIDC("api://x", environ=oidc.environ())
    assert repr(source) == (f"GitHubActionsOIDC(audience='api://x', "
                            f"url='{oidc.base_url}/idtoken')")


# -- GitHub Actions: copies ------------------------------------------------------------------


def test_pickled_source_fetches_its_own_token(oidc: OIDCServer, wall_clock: FakeClock) -> None:
    """A pickle holds no ID token, Session or lock; the copy (pickled or deep-copied)
    asks for its own token with its own Session and lock."""
    source = GitHubActionsOIDC("aud", environ=oidc.environ(), clock=wall_clock)
    token = source()
    data = pickle.dumps(source)
    assert token.encode() not in data
    for clone in (pickle.loads(data), copy.deepcopy(source)):
        assert isinstance(clone, GitHubActionsOIDC) and repr(clone) == repr(source)
        assert clone._held is None and clone._session is None
        assert clone._lock is not source._lock
        assert clone() != token
        clone.close()
    assert oidc.requests == 3 and source() == token
    source.close()


def call_in_worker(source: GitHubActionsOIDC) -> tuple[str, int]:
    """Run in a worker process: the ID token the source gives there, and the pid."""
    try:
        return str(source()), os.getpid()
    finally:
        source.close()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_source_goes_to_a_process_pool(oidc: OIDCServer, method: str) -> None:
    """A source sent to a real spawn/forkserver worker fetches a token there, with the
    audience it was built with."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    source = GitHubActionsOIDC("worker-aud", environ=oidc.environ())
    source()
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        token, pid = pool.submit(call_in_worker, source).result(timeout=120)
    source.close()
    assert pid != os.getpid()
    assert token == oidc.issued[1] and claims_of(token)["aud"] == "worker-aud"


# -- GitHub Actions: whatever the service answers --------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
claims = st.fixed_dictionaries({}, optional={
    "exp": json_values | st.floats(time.time() - 100, time.time() + 10_000),
    "iat": json_values | st.floats(time.time() - 100, time.time() + 10_000),
})
values = st.one_of(
    json_values,
    st.text(alphabet="abcXYZ0123-_.=/+ ", max_size=40),
    claims.map(make_jwt),
    st.builds(lambda c, cut: make_jwt(c)[:cut], claims, st.integers(0, 200)),
)
answers = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.just("value"), values, max_size=1).map(lambda d: json.dumps(d).encode()),
)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[RawServer, dict[str, bytes]]]:
    """A raw server answering each request with ``answer["raw"]``, set per example."""
    answer: dict[str, bytes] = {}
    with RawServer(lambda request: [(0, answer["raw"])]) as server:
        yield server, answer


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(status=st.sampled_from([200, 200, 200, 201, 204, 302, 401, 403, 404, 500, 503]),
       body=answers, content_type=st.sampled_from(["application/json", "text/html"]))
def test_any_answer_gives_a_usable_jwt_or_a_credential_error(
    scripted: tuple[RawServer, dict[str, bytes]], status: int, body: bytes, content_type: str
) -> None:
    """Whatever status and body the token service sends, a call returns a JWT valid for
    more than 5 s or raises a CredentialError, promptly, whose text holds no request
    token."""
    server, answer = scripted
    answer["raw"] = raw_response(status, body, {"Content-Type": content_type})
    source = GitHubActionsOIDC(timeout=2.0, retries=0, environ=raw_environ(server))
    started = time.monotonic()
    try:
        token = source()
    except CredentialError as exc:
        assert REQUEST_TOKEN not in chain_text(exc)
    else:
        exp = claims_of(token).get("exp")
        assert exp is None or exp > time.time() + 5
        assert json.loads(body)["value"] == token
    finally:
        source.close()
    assert time.monotonic() - started < 3


# -- Entra ID workload identity --------------------------------------------------------------

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "5a1c7b0e-1111-4d2e-9e5f-6a7b8c9d0e1f"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "azure-identity-token"
    path.write_text(make_jwt({"exp": time.time() + 3600}))
    return path


def entra_env(token_file: Path, **changes: str | None) -> dict[str, str]:
    environ = {"AZURE_CLIENT_ID": CLIENT, "AZURE_TENANT_ID": TENANT,
               "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
               "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/"}
    environ.update(changes)  # type: ignore[arg-type]
    return {name: value for name, value in environ.items() if value is not None}


def test_entra_gives_the_tenant_token_url_client_id_and_token_file(token_file: Path) -> None:
    """The webhook's variables give the tenant's v2.0 token URL, the client id and the
    token file's path, as ClientCredentialsAuth keywords."""
    identity = entra_workload_identity(entra_env(token_file))
    assert identity["client_assertion"].path == token_file
    assert {**identity, "client_assertion": None} == {
        "token_url": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",
        "client_id": CLIENT, "client_assertion": None}


def test_entra_unpacks_into_keywords_mypy_checks(token_file: Path) -> None:
    """WorkloadIdentity is a TypedDict: ** unpacking into matching keywords type-checks
    (mypy --strict runs on this file) and works."""
    def takes(*, token_url: str, client_id: str, client_assertion: AssertionFile,
              scope: str) -> tuple[str, str, AssertionFile, str]:
        return token_url, client_id, client_assertion, scope

    identity: WorkloadIdentity = entra_workload_identity(entra_env(token_file))
    assert takes(**identity, scope="api://x/.default")[2].path == token_file


def test_entra_reads_os_environ_by_default(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without environ=, os.environ is read; AZURE_AUTHORITY_HOST unset means the public
    cloud."""
    for name, value in entra_env(token_file, AZURE_AUTHORITY_HOST=None).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AZURE_AUTHORITY_HOST", raising=False)
    assert entra_workload_identity()["token_url"].startswith(
        f"https://login.microsoftonline.com/{TENANT}/")


@pytest.mark.parametrize(("authority", "base"), [
    (None, "https://login.microsoftonline.com"),
    ("  ", "https://login.microsoftonline.com"),
    ("https://login.microsoftonline.us", "https://login.microsoftonline.us"),
    ("https://login.microsoftonline.us//", "https://login.microsoftonline.us"),
    ("login.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("https://adfs.contoso.example/adfs/", "https://adfs.contoso.example/adfs"),
])
def test_entra_authority_host_forms(token_file: Path, authority: str | None, base: str) -> None:
    """The authority with or without trailing slashes, without a scheme (https added, as
    azure-identity does), or unset/blank (the public cloud) gives one token URL form."""
    identity = entra_workload_identity(entra_env(token_file, AZURE_AUTHORITY_HOST=authority))
    assert identity["token_url"] == f"{base}/{TENANT}/oauth2/v2.0/token"


@pytest.mark.parametrize(("changes", "named"), [
    ({"AZURE_CLIENT_ID": None, "AZURE_TENANT_ID": None, "AZURE_FEDERATED_TOKEN_FILE": None},
     ["AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE are"]),
    ({"AZURE_TENANT_ID": " \t"}, ["AZURE_TENANT_ID is"]),
    ({"AZURE_CLIENT_ID": "", "AZURE_FEDERATED_TOKEN_FILE": None},
     ["AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE are"]),
])
def test_entra_missing_variables_are_all_named(
    token_file: Path, changes: dict[str, str | None], named: list[str]
) -> None:
    """Missing or blank variables: one ConfigurationError naming every one, saying the
    AKS workload identity webhook sets them."""
    with pytest.raises(ConfigurationError) as info:
        entra_workload_identity(entra_env(token_file, **changes))
    message = str(info.value)
    assert all(name in message for name in named)
    assert "workload identity webhook" in message and "azure.workload.identity/use" in message


@pytest.mark.parametrize("tenant", [
    "a/b", "x?y", "t#f", "a..b", "user@contoso.com", "my tenant", "../../evil", ".lead",
    "trail.", "-x", "t\u0131", "x" * 254, "%2e%2e",
])
def test_entra_tenant_that_could_change_the_url_is_refused(token_file: Path, tenant: str) -> None:
    """A tenant that is neither a GUID nor a domain-like name (a path, query, fragment,
    user info, '..', spaces, non-ASCII, too long) is refused."""
    with pytest.raises(ConfigurationError, match="AZURE_TENANT_ID is not a tenant id"):
        entra_workload_identity(entra_env(token_file, AZURE_TENANT_ID=tenant))


@pytest.mark.parametrize("tenant", [TENANT, "contoso.onmicrosoft.com", "organizations",
                                    "9188040d-6c67-4c5b-b112-36a304b66dad"])
def test_entra_guid_and_domain_tenants_are_accepted(token_file: Path, tenant: str) -> None:
    """GUIDs, domain names and names such as "organizations" are tenants."""
    identity = entra_workload_identity(entra_env(token_file, AZURE_TENANT_ID=tenant))
    assert f"/{tenant}/oauth2/v2.0/token" in identity["token_url"]


@pytest.mark.parametrize("authority", [
    "ftp://login.example/", "https://user:pw@login.example/", "https://login.example/?x=1",
    "https://login.example/#f", "https://", "https://login.example/a b",
])
def test_entra_unusable_authority_is_refused(token_file: Path, authority: str) -> None:
    """An authority that is not http(s), has no host, holds user info, a query, a fragment
    or spaces: ConfigurationError, never quoting user info."""
    with pytest.raises(ConfigurationError, match="AZURE_AUTHORITY_HOST") as info:
        entra_workload_identity(entra_env(token_file, AZURE_AUTHORITY_HOST=authority))
    assert "pw" not in str(info.value)


def test_entra_token_file_that_cannot_be_read_is_refused_unquoted(tmp_path: Path) -> None:
    """AZURE_FEDERATED_TOKEN_FILE naming no file (here, a JWT given by mistake) is refused
    without quoting the value."""
    jwt = make_jwt({"exp": 1})
    with pytest.raises(ConfigurationError, match="AZURE_FEDERATED_TOKEN_FILE") as info:
        entra_workload_identity(entra_env(tmp_path, AZURE_FEDERATED_TOKEN_FILE=jwt))
    assert jwt not in str(info.value) and "not shown" in str(info.value)


def test_entra_client_id_is_stripped_and_checked(token_file: Path) -> None:
    """Surrounding whitespace (a trailing newline from a secret store) is dropped; a client
    id Python could not encode (a lone surrogate) is refused."""
    identity = entra_workload_identity(entra_env(token_file, AZURE_CLIENT_ID=f" {CLIENT}\n"))
    assert identity["client_id"] == CLIENT
    with pytest.raises(ConfigurationError, match="AZURE_CLIENT_ID is not valid text"):
        entra_workload_identity(entra_env(token_file, AZURE_CLIENT_ID="id\udcff"))


# -- Kubernetes ------------------------------------------------------------------------------


def test_kubernetes_token_gives_the_path_of_a_readable_token(token_file: Path) -> None:
    """A readable token file: an AssertionFile of its path comes back (str or PathLike
    given)."""
    assert kubernetes_token(token_file).path == token_file
    assert kubernetes_token(str(token_file)).path == token_file
    assert isinstance(kubernetes_token(str(token_file)), AssertionFile)


def test_kubernetes_default_path_outside_a_pod_says_what_to_do() -> None:
    """Outside a pod the default token is missing: ConfigurationError naming the default
    path and the fix (a serviceAccountToken projected volume with the right audience)."""
    if os.path.exists(KUBERNETES_TOKEN_PATH):
        pytest.skip("running in a pod: the default token exists")
    assert KUBERNETES_TOKEN_PATH == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    with pytest.raises(ConfigurationError) as info:
        kubernetes_token()
    message = str(info.value)
    assert repr(KUBERNETES_TOKEN_PATH) in message
    assert "serviceAccountToken projected volume" in message and "audience" in message


def _fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(("make", "said"), [
    (lambda d: d, "not a regular file"),
    (_fifo, "not a regular file"),
    (lambda d: (d / "empty").write_text("  \n") and d / "empty", "is empty"),
    (lambda d: (d / "big").write_bytes(b"x" * 70_000) and d / "big", "larger than"),
])
def test_kubernetes_file_that_is_no_token_is_refused(
    tmp_path: Path, make: Callable[[Path], Path], said: str
) -> None:
    """A directory, a FIFO (refused without blocking), an empty or blank file, a file over
    64 KiB: ConfigurationError saying which, naming the (existing) path."""
    path = make(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        kubernetes_token(path)
    assert said in str(info.value) and repr(str(path)) in str(info.value)


def test_kubernetes_path_to_nothing_is_not_quoted(tmp_path: Path) -> None:
    """A path to no file may be the token given by mistake: the message does not quote it."""
    jwt = make_jwt({"exp": 1})
    with pytest.raises(ConfigurationError) as info:
        kubernetes_token(jwt)
    assert jwt not in str(info.value) and "No such file" in str(info.value)


@pytest.mark.parametrize("path", [42, None, b"/var/run/token", ""])
def test_kubernetes_path_of_another_type_is_refused(path: Any) -> None:
    """A value that is not a str or os.PathLike path (or an empty one) is refused."""
    with pytest.raises(ConfigurationError, match="must be a path"):
        kubernetes_token(path)


def test_kubernetes_unreadable_file_is_refused(token_file: Path) -> None:
    """A path the process cannot open (here: through a file, as if it were a directory,
    which fails for root too): ConfigurationError with the reason."""
    with pytest.raises(ConfigurationError, match="Not a directory"):
        kubernetes_token(token_file / "token")


# -- the package -----------------------------------------------------------------------------


def test_platform_names_are_lazy_package_exports() -> None:
    """Every name in platforms.__all__ is exported by the package, as the same object."""
    from requests_oauthcc import platforms

    for name in platforms.__all__:
        assert name in requests_oauthcc.__all__
        assert getattr(requests_oauthcc, name) is getattr(platforms, name)


def test_a_runner_clock_behind_github_does_not_keep_a_token_past_its_life(
        wall_clock: FakeClock) -> None:
    """The keep time counts the token's life (exp - iat) from its receipt too: with this
    machine's clock ten minutes behind GitHub's, a 300 s token is fetched again within
    its real life, not ten minutes after it died."""
    with OIDCServer(clock=wall_clock, lifetime=300) as server:
        source = GitHubActionsOIDC(environ=server.environ(),
                                   clock=lambda: wall_clock() - 600)
        source()
        wall_clock.advance(300 - 59)  # past the 60 s margin, by GitHub's clock and by ours
        source()
        assert server.requests == 2
