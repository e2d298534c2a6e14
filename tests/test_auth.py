"""ClientCredentialsAuth on real requests Sessions against the local server."""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    InsecureTransportError,
    InvalidClientError,
)
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, in_threads, settle

MakeAuth = Callable[..., ClientCredentialsAuth]


def test_constructor_makes_no_network_call() -> None:
    """Building the auth for an unreachable server succeeds: nothing is fetched yet."""
    auth = ClientCredentialsAuth("https://unreachable.invalid/token", "id", "secret")
    assert auth.token is None


def test_first_request_fetches_and_later_ones_reuse(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """The token is fetched lazily on the first request and reused afterwards."""
    session.auth = make_auth()
    assert server.token_requests == 0
    for _ in range(5):
        assert session.get(server.resource_url).status_code == 200
    assert server.token_requests == 1
    assert server.resource_requests == 5


def test_per_request_auth_works_too(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """requests.get(url, auth=auth) uses and reuses the same token."""
    auth = make_auth()
    assert requests.get(server.resource_url, auth=auth, timeout=5).status_code == 200
    assert requests.post(server.resource_url, auth=auth, timeout=5).status_code == 200
    assert server.token_requests == 1


def test_token_is_refreshed_leeway_before_expiry(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session, clock: FakeClock
) -> None:
    """With a 100 s token and 10 s leeway, the token is replaced after 90 s, not before."""
    server.token_lifetime = 100
    session.auth = auth = make_auth(leeway=10, clock=clock)
    session.get(server.resource_url)
    first = auth.token
    clock.advance(89)
    session.get(server.resource_url)
    assert auth.token is first and server.token_requests == 1
    clock.advance(2)
    assert session.get(server.resource_url).status_code == 200
    settle(auth)  # refreshed ahead, in the background
    assert auth.token is not first and server.token_requests == 2


def test_short_lived_token_is_not_fetched_for_every_request(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session, clock: FakeClock
) -> None:
    """A 10 s token with the default 30 s leeway is still reused for 9 s."""
    server.token_lifetime = 10
    session.auth = auth = make_auth(clock=clock)
    for _ in range(9):
        session.get(server.resource_url)
        clock.advance(0.99)
    assert server.token_requests == 1
    clock.advance(0.2)
    session.get(server.resource_url)
    settle(auth)
    assert server.token_requests == 2


def test_no_expires_in_uses_token_until_rejected(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session, clock: FakeClock
) -> None:
    """Without expires_in the token is reused until a 401, then replaced once."""
    server.token_lifetime = None
    session.auth = make_auth(clock=clock)
    session.get(server.resource_url)
    clock.advance(10**6)
    session.get(server.resource_url)
    assert server.token_requests == 1
    server.revoke_all()
    assert session.get(server.resource_url).status_code == 200
    assert server.token_requests == 2


def test_default_lifetime_applies_when_expires_in_is_missing(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session, clock: FakeClock
) -> None:
    """default_lifetime bounds the use of a token that came without expires_in."""
    server.token_lifetime = None
    session.auth = make_auth(clock=clock, default_lifetime=60, leeway=0)
    session.get(server.resource_url)
    clock.advance(61)
    session.get(server.resource_url)
    assert server.token_requests == 2


def test_401_is_retried_once_with_a_new_token(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """A revoked token: the 401 is kept in history and the retry succeeds."""
    session.auth = auth = make_auth()
    session.get(server.resource_url)
    old = auth.token
    server.revoke_all()
    response = session.get(server.resource_url)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.request.headers["Authorization"] == auth.token.authorization  # type: ignore[union-attr]
    assert auth.token is not old
    assert server.token_requests == 2


def test_never_more_than_one_retry(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """An endpoint that always answers 401 costs one retry and one new token, no more."""
    session.auth = make_auth()
    response = session.get(server.url("/unauthorized"))
    assert response.status_code == 401
    assert len(response.history) == 1
    assert server.token_requests == 2


def test_other_statuses_are_left_alone(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """A 404 (or any non-401) is returned untouched, with no extra token request."""
    session.auth = make_auth()
    response = session.get(server.url("/nowhere"))
    assert response.status_code == 404 and not response.history
    assert server.token_requests == 1


def test_401_retry_keeps_method_body_and_send_options(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """The resent request has the same method and body; stream=True is honoured."""
    session.auth = make_auth()
    session.get(server.resource_url)
    server.revoke_all()
    response = session.put(server.resource_url, json={"k": "v"}, stream=True, timeout=5)
    assert response.status_code == 200 and response.history[0].status_code == 401
    assert response.raw is not None and not response.raw.closed
    echo = response.json()
    assert echo["method"] == "PUT" and echo["body_length"] == len(b'{"k": "v"}')


def test_seekable_file_body_is_rewound_and_replayed(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session, tmp_path: object
) -> None:
    """A file body sent before the 401 is rewound and the whole body sent again."""
    import hashlib
    from pathlib import Path

    session.auth = make_auth()
    session.get(server.resource_url)
    server.revoke_all()
    payload = os.urandom(100_000)
    path = Path(str(tmp_path)) / "body.bin"
    path.write_bytes(b"HEADER" + payload)
    with path.open("rb") as body:
        body.seek(6)  # replay must start where the caller's body started, not at 0
        response = session.post(server.resource_url, data=body)
    assert response.status_code == 200 and len(response.history) == 1
    assert response.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_bytesio_body_replayed_at_the_socket_level(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """A raw socket peer sees the same body bytes on the 401 attempt and the retry."""
    session.auth = auth = make_auth()
    auth.fetch_token()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    bodies: list[bytes] = []

    def serve() -> None:
        for status in (b"401 Unauthorized", b"200 OK"):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(rest) < length:
                    rest += conn.recv(65536)
                bodies.append(rest)
                conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")

    thread = threading.Thread(target=serve)
    thread.start()
    response = session.post(f"http://127.0.0.1:{port}/api", data=io.BytesIO(b"x" * 5000))
    thread.join(5)
    listener.close()
    assert response.status_code == 200
    assert bodies == [b"x" * 5000, b"x" * 5000]


def test_generator_body_is_not_replayed_and_token_is_replaced(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """A generator cannot be sent twice: the 401 comes back unchanged, and the rejected
    token is replaced (one token request, bounded like any rejection) for the next call."""
    session.auth = auth = make_auth()
    session.get(server.resource_url)
    rejected = auth.token
    server.revoke_all()

    def chunks() -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    response = session.post(server.resource_url, data=chunks())
    assert response.status_code == 401 and not response.history
    assert auth.token is not None and auth.token is not rejected
    assert server.token_requests == 2
    assert session.get(server.resource_url).status_code == 200
    assert server.token_requests == 2


def test_non_seekable_stream_is_not_replayed(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """A pipe (tell() fails) is returned as a 401, unchanged."""
    session.auth = make_auth()
    session.get(server.resource_url)
    server.revoke_all()
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"data from a pipe")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        response = session.post(server.resource_url, data=pipe)
    assert response.status_code == 401 and not response.history


def test_401_after_cross_host_redirect_is_not_retried(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """requests strips our token on a redirect to another host; we do not add it back."""
    session.auth = make_auth()
    other_host = f"http://localhost:{server.port}/resource"
    response = session.get(server.url(f"/redirect?to={other_host}"))
    assert response.status_code == 401
    assert "Authorization" not in response.request.headers
    assert [r.status_code for r in response.history] == [302]
    assert server.token_requests == 1


def test_same_host_redirect_keeps_the_token(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """A redirect on the same origin keeps Authorization, as requests does."""
    session.auth = make_auth()
    response = session.get(server.url(f"/redirect?to={server.resource_url}"))
    assert response.status_code == 200


def test_cookies_set_on_the_401_are_sent_with_the_retry(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """Cookies from the 401 response go out with the retried request."""
    session.auth = make_auth()
    session.get(server.resource_url)
    server.revoke_all()
    response = session.get(server.url("/resource/cookie"))
    assert response.status_code == 200
    assert response.json()["cookie"] == "rs_session=from-401"


def test_thirty_two_cold_threads_make_one_token_request(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """32 threads sharing one auth, starting together, cause exactly one token request."""
    auth = make_auth()

    def call() -> int:
        with requests.Session() as s:
            return s.get(server.resource_url, auth=auth, timeout=10).status_code

    assert in_threads(32, call) == [200] * 32
    assert server.token_requests == 1


def test_revocation_seen_by_many_threads_costs_one_token(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """After a revocation, 16 threads retrying at once share one new token."""
    auth = make_auth()
    auth.fetch_token()
    server.revoke_all()
    statuses = in_threads(
        16, lambda: requests.get(server.resource_url, auth=auth, timeout=10).status_code
    )
    assert statuses == [200] * 16
    assert server.token_requests == 2


def test_token_session_is_the_given_one_never_the_mounted_one(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """Token requests use session= (here counted by a hook), not the API Session."""
    token_session = requests.Session()
    seen: list[str] = []
    token_session.hooks["response"].append(lambda r, **kw: seen.append(r.url))
    api = requests.Session()
    api.hooks["response"].append(lambda r, **kw: seen.append("api:" + r.url))
    api.auth = make_auth(session=token_session)
    api.get(server.resource_url)
    assert seen == [server.token_url, "api:" + server.resource_url]


def test_fetch_token_and_invalidate(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """fetch_token always fetches; invalidate makes the next request fetch."""
    auth = make_auth()
    first = auth.fetch_token()
    second = auth.fetch_token()
    assert first is not second
    assert auth.token is second
    auth.invalidate()
    assert getattr(auth, "token") is None  # noqa: B009 - a call, so narrowing does not stick
    requests.get(server.resource_url, auth=auth, timeout=5)
    assert server.token_requests == 3


def test_token_error_surfaces_from_the_api_call(make_auth: MakeAuth) -> None:
    """A refused token request raises our error from session.get, as a RequestException."""
    with pytest.raises(requests.RequestException) as caught:
        requests.get("http://127.0.0.1:1/", auth=make_auth(client_secret="wrong"), timeout=5)
    assert isinstance(caught.value, InvalidClientError)


def test_repr_shows_configuration_not_secrets(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """repr names URL, client id, scope and method; never the secret or the token."""
    auth = make_auth(scope="read")
    token = auth.fetch_token()
    text = repr(auth)
    assert server.token_url in text and CLIENT_ID in text and "'read'" in text
    assert "client_secret_basic" in text
    assert CLIENT_SECRET not in text and token.access_token not in text


def test_plain_http_to_a_remote_host_is_refused(make_auth: MakeAuth) -> None:
    """The token is never attached to http:// for a non-loopback host."""
    with pytest.raises(InsecureTransportError, match="plain http"):
        requests.get("http://example.invalid/api", auth=make_auth(), timeout=5)


def test_insecure_token_url_is_refused_at_construction() -> None:
    """An http:// token URL on a remote host raises unless explicitly allowed."""
    with pytest.raises(InsecureTransportError, match="token_url"):
        ClientCredentialsAuth("http://as.example.com/token", "id", "secret")
    ClientCredentialsAuth("http://as.example.com/token", "id", "secret",
                          insecure_allow_http=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "localhost", "[::1]"])
def test_loopback_http_is_allowed(host: str) -> None:
    """Loopback hosts may use plain http for both the token URL and the API."""
    ClientCredentialsAuth(f"http://{host}:8080/token", "id", "secret")


def test_allowed_origins_limit_where_the_token_goes(
    make_auth: MakeAuth, server: OAuthTestServer, session: requests.Session
) -> None:
    """With allowed_origins, other origins get no token (and no token is fetched for them)."""
    session.auth = make_auth(allowed_origins=[f"http://localhost:{server.port}"])
    response = session.get(server.resource_url)  # 127.0.0.1 is not in the list
    assert response.status_code == 401 and "Authorization" not in response.request.headers
    assert server.token_requests == 0
    allowed = session.get(f"http://localhost:{server.port}/resource")
    assert allowed.status_code == 200


def test_the_fast_path_skips_no_rule(
    make_auth: MakeAuth, server: OAuthTestServer, clock: FakeClock
) -> None:
    """Once a token went to an https URL (the per-request fast path), a request in the
    clear, an origin outside allowed_origins, an invalidated token and a token past its
    refresh time are each judged in full, as on the first request."""
    def attach(auth: ClientCredentialsAuth, url: str) -> requests.PreparedRequest:
        prepared = requests.Request("GET", "https://api.example.com/").prepare()
        prepared.url = url  # as a hook of the caller may set it: judged all the same
        return auth(prepared)

    auth = make_auth(clock=clock)
    first = attach(auth, "https://api.example.com/a").headers["Authorization"]
    assert attach(auth, "https://api.example.com/b").headers["Authorization"] == first
    for url in ("http://api.example.com/a", "http://https://x/", "http://127.0.0.1.evil/"):
        with pytest.raises(InsecureTransportError):
            attach(auth, url)
    auth.invalidate()
    second = attach(auth, "https://api.example.com/a").headers["Authorization"]
    assert second != first and server.token_requests == 2
    clock.advance(3600 - 30)  # the default leeway before the one-hour expiry
    assert attach(auth, "https://api.example.com/a").headers["Authorization"] == second
    settle(auth)  # refreshed ahead, in the background
    assert attach(auth, "https://api.example.com/a").headers["Authorization"] != second
    assert server.token_requests == 3
    limited = make_auth(clock=clock, allowed_origins=["https://api.example.com"])
    for _ in range(2):
        assert "Authorization" in attach(limited, "https://api.example.com/x").headers
    assert "Authorization" not in attach(limited, "https://other.example.com/x").headers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_url": "ftp://x/token"}, "token_url"),
        ({"token_url": None}, "token_url"),
        ({"client_id": ""}, "client_id"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": "30"}, "leeway"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"default_lifetime": 0}, "default_lifetime"),
        ({"retries": -1}, "retries"),
        ({"session": "not a session"}, "session"),
        ({"allowed_origins": ["not a url"]}, "allowed_origins"),
        ({"allowed_origins": ["https://api.example.com/v1"]}, "allowed_origins.*path"),
        ({"allowed_origins": ["https://api.example.com?x=1"]}, "allowed_origins.*path"),
        ({"allowed_origins": ["https:///"]}, "allowed_origins.*host"),
        ({"token_url": "https:///token"}, "token_url must name a host"),
        ({"token_url": "http://"}, "token_url must name a host"),
        ({"token_url": "https://id:pw-Zq8mX4@as.example.com/t"}, "token_url must not hold user"),
        ({"auth_method": "private_key_magic"}, "auth_method"),
    ],
)
def test_bad_arguments_are_configuration_errors(
    make_auth: MakeAuth, kwargs: dict[str, object], message: str
) -> None:
    """Each bad argument raises ConfigurationError (also a ValueError) naming it."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        make_auth(**kwargs)
    assert isinstance(caught.value, ValueError)
    assert CLIENT_SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://example.invalid/api", "http://127.0.0.1@evil.example/x",
     "http://127.0.0.1.evil.example/x", "HTTP://example.invalid/"],
)
def test_plain_http_refusal_holds_on_every_request(make_auth: MakeAuth, url: str) -> None:
    """The remembered verdict per scheme://authority never lets a remote host through."""
    auth = make_auth()
    for _ in range(3):
        with pytest.raises(InsecureTransportError):
            requests.get(url, auth=auth, timeout=5)


# -- the 401 before a retry: bounded, replayed bodies, redirects (issue #10, item 7) ------


def _tokens(auth: ClientCredentialsAuth) -> str:
    assert auth.token is not None
    return auth.token.authorization


@pytest.mark.parametrize("stream", [True, False])
def test_endless_401_body_is_not_drained(make_auth: MakeAuth, stream: bool) -> None:
    """A 401 whose chunked body never ends: its connection is closed after a bounded read
    and the retry succeeds at once (on 0.2.0 the call read until the server gave up)."""
    import time

    from .rawserver import RawServer, endless_chunked, in_turn, raw_response

    auth = make_auth()
    answer = in_turn(endless_chunked(), [(0, raw_response(200, b"fine"))])
    with RawServer(answer, keep_alive=True) as raw, requests.Session() as session:
        session.auth = auth
        started = time.monotonic()
        response = session.get(raw.url("/api"), stream=stream, timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and response.content == b"fine"
    assert elapsed < 5, elapsed
    assert [r.connection for r in raw.requests] == [0, 1]  # the 401's connection not reused
    assert response.history[0].status_code == 401 and response.history[0].content == b""


@pytest.mark.parametrize("kind", ["declared", "chunked"])
def test_large_401_body_costs_no_memory(make_auth: MakeAuth, kind: str) -> None:
    """A 100 MiB 401 (declared in Content-Length, or chunked) is not read: the memory
    growth of the call stays far below the body (0.2.0 held the whole body, twice)."""
    import time
    import tracemalloc

    from .rawserver import RawServer, endless_chunked, huge_body, in_turn, raw_response

    auth = make_auth()
    auth.fetch_token()
    big = huge_body(100 << 20) if kind == "declared" else endless_chunked(seconds=10)
    answer = in_turn(big, [(0, raw_response(200, b"fine"))])
    with RawServer(answer, keep_alive=True) as raw, requests.Session() as session:
        session.auth = auth
        tracemalloc.start()
        try:
            started = time.monotonic()
            response = session.get(raw.url("/api"), stream=True, timeout=30)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status_code == 200
    assert peak < 8 << 20, f"peak {peak / (1 << 20):.1f} MiB"
    assert elapsed < 5, elapsed


def test_small_401_body_is_drained_and_its_connection_reused(make_auth: MakeAuth) -> None:
    """A short 401 body is read, so the retry goes out on the same kept-alive connection."""
    from .rawserver import RawServer, in_turn, raw_response

    auth = make_auth()
    error = b'{"error": "invalid_token"}'
    answer = in_turn([(0, raw_response(401, error, {"WWW-Authenticate": "Bearer"}))],
                     [(0, raw_response(200, b"fine"))])
    with RawServer(answer, keep_alive=True) as raw, requests.Session() as session:
        session.auth = auth
        response = session.get(raw.url("/api"), timeout=10)
    assert response.status_code == 200
    assert [r.connection for r in raw.requests] == [0, 0]
    assert response.history[0].content == error


@pytest.mark.parametrize(
    "make_body",
    [bytearray, memoryview, lambda data: __import__("array").array("B", data)],
    ids=["bytearray", "memoryview", "array"],
)
def test_bytes_like_bodies_are_replayed_at_the_socket_level(
    make_auth: MakeAuth, make_body: Callable[[bytes], Any]
) -> None:
    """bytearray, memoryview and array bodies are sent again, byte for byte, after a 401
    (0.2.0 gave them up as unreplayable and returned the 401)."""
    from .rawserver import RawServer, in_turn, raw_response

    auth = make_auth()
    payload = os.urandom(5000)
    answer = in_turn([(0, raw_response(401, headers={"WWW-Authenticate": "Bearer"}))],
                     [(0, raw_response(200))])
    with RawServer(answer, keep_alive=True) as raw, requests.Session() as session:
        session.auth = auth
        response = session.post(raw.url("/api"), data=make_body(payload), timeout=10)
    assert response.status_code == 200 and len(response.history) == 1
    assert [r.body for r in raw.requests] == [payload, payload]
    first, second = (r.headers.get("authorization") for r in raw.requests)
    assert first != second and second == _tokens(auth)


def test_redirect_after_the_retry_carries_the_new_token(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """requests follows a redirect answering the retry with a copy of the original request:
    it carries the new token (0.2.0 sent the rejected one again, then retried once more)."""
    from .rawserver import RawServer, in_turn, raw_response

    auth = make_auth()
    old = auth.fetch_token().authorization
    answer = in_turn([(0, raw_response(401, headers={"WWW-Authenticate": "Bearer"}))],
                     [(0, raw_response(302, headers={"Location": "/moved"}))],
                     [(0, raw_response(200, b"fine"))])
    with RawServer(answer, keep_alive=True) as raw, requests.Session() as session:
        session.auth = auth
        response = session.get(raw.url("/api"), timeout=10)
    assert response.status_code == 200 and response.content == b"fine"
    sent = [(r.path, r.headers.get("authorization")) for r in raw.requests]
    new = _tokens(auth)
    assert sent == [("/api", old), ("/api", new), ("/moved", new)]
    assert server.token_requests == 2
