"""``on_event``: what an auth object tells about its token requests, retries and shared
cache, in typed immutable values that never carry a secret or a token (issue #15, part 1)."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, ConfigurationError, DPoPKey, InvalidClientError
from requests_oauthcc.cache import MemoryTokenCache
from requests_oauthcc.events import (
    CacheFailed,
    CacheHit,
    CacheMiss,
    DPoPNonceRetried,
    Event,
    RequestNotRetried,
    RequestRetried,
    TokenFetched,
    TokenRequestFailed,
    short_fingerprint,
)
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, settle
from .rawserver import RawServer, raw_response


class Recorder:
    """An ``on_event`` callable keeping what it hears; :meth:`kinds` for the order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def of(self, kind: type[Event] | tuple[type[Event], ...]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def assert_hides(self, *secrets: str) -> None:
        """No event, by repr or by field, shows any of ``secrets``."""
        for event in self.events:
            shown = repr(event) + repr([getattr(event, f) for f in event._fields])
            for secret in secrets:
                assert secret not in shown, type(event).__name__


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def always(status: int, challenge: str | None = None) -> RawServer:
    """An API answering every request with ``status`` (and the challenge, if any)."""
    headers = {} if challenge is None else {"WWW-Authenticate": challenge}
    return RawServer(lambda request: [(0, raw_response(status, b"no", headers))],
                     keep_alive=True)


def test_fetch_retry_and_failure_are_told_in_order(
    server: OAuthTestServer, recorder: Recorder
) -> None:
    """A first fetch, a 401 answered by a new token and a refused token request: each
    event with its facts, the tokens named by fingerprint only."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, on_event=recorder)
    with requests.Session() as session:
        session.auth = auth
        assert session.get(server.resource_url, timeout=10).status_code == 200
        first = auth.token
        assert first is not None
        server.revoke_all()
        assert session.get(server.resource_url, timeout=10).status_code == 200
        second = auth.token
        assert second is not None
        server.revoke_all()
        server.queue_response(401, {"error": "invalid_client"})
        with pytest.raises(InvalidClientError):
            session.get(server.resource_url, timeout=10)
    # The new token arrives before the request is sent again with it.
    assert recorder.kinds() == ["TokenFetched", "TokenFetched", "RequestRetried",
                                "TokenRequestFailed"]
    fetched, refetched, retried, failed = recorder.events
    assert isinstance(fetched, TokenFetched)
    assert (fetched.source, fetched.attempts, fetched.token_type) == ("endpoint", 1, "Bearer")
    assert fetched.token == short_fingerprint(first.access_token) and len(fetched.token) == 12
    assert fetched.expires_in is not None and 3500 < fetched.expires_in <= 3600
    assert 0 <= fetched.duration < 10
    assert retried == RequestRetried(status_code=401, reason="invalid_token",
                                     url=server.resource_url,
                                     token=short_fingerprint(first.access_token))
    assert isinstance(refetched, TokenFetched)
    assert refetched.token == short_fingerprint(second.access_token)
    assert isinstance(failed, TokenRequestFailed)
    assert (failed.error, failed.status_code, failed.using_held_token) == (
        "invalid_client", 401, False)
    recorder.assert_hides(CLIENT_SECRET, first.access_token, second.access_token)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fetched.source = "cache"  # type: ignore[misc]
    logged = json.loads(json.dumps(retried.as_dict()))  # as a JSON log line would take it
    assert logged == {"event": "RequestRetried", "status_code": 401, "reason": "invalid_token",
                      "url": server.resource_url,
                      "token": short_fingerprint(first.access_token)}


def test_a_failed_refresh_says_the_held_token_stays_in_use(
    server: OAuthTestServer, recorder: Recorder, clock: FakeClock
) -> None:
    """A refresh ahead of expiry that fails leaves the valid token in use, and says so;
    an error code that is not registered is named by the exception's type, never by the
    server's text."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, retries=0,
                                 on_event=recorder, clock=clock)
    auth.fetch_token()
    clock.advance(3600 - 20)  # past the refresh time (leeway 30 s), still valid
    server.queue_response(400, {"error": "made_up_<script>"})
    with requests.Session() as session:
        session.auth = auth
        assert session.get(server.resource_url, timeout=10).status_code == 200
    settle(auth)
    failed = recorder.of(TokenRequestFailed)
    assert len(failed) == 1
    assert (failed[0].error, failed[0].status_code, failed[0].using_held_token) == (
        "TokenError", 400, True)


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        ('Bearer error="insufficient_scope", scope="admin"',
         [("RequestNotRetried", "insufficient_scope")]),
        ('Bearer error="invalid_request"', [("RequestNotRetried", "invalid_request")]),
        (None, [("RequestRetried", "no_error_code"), ("RequestNotRetried", "already_retried")]),
        ('Bearer error="invalid_token"',
         [("RequestRetried", "invalid_token"), ("RequestNotRetried", "already_retried")]),
        ('Bearer error="odd"',
         [("RequestRetried", "other_error_code"), ("RequestNotRetried", "already_retried")]),
    ],
)
def test_each_401_says_whether_and_why_it_was_retried(
    server: OAuthTestServer, recorder: Recorder, challenge: str | None,
    expected: list[tuple[str, str]],
) -> None:
    """Retried after a 401 (why: the challenge), or not (why not), URL without query."""
    with always(401, challenge) as api, requests.Session() as session:
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                             on_event=recorder)
        session.get(api.url("/x?api_key=QUERYSECRET"), timeout=10)
    told = [(type(e).__name__, e.reason) for e in recorder.events
            if isinstance(e, (RequestRetried, RequestNotRetried))]
    assert told == expected
    assert all(e.url == api.url("/x") for e in recorder.of((RequestRetried, RequestNotRetried)))
    recorder.assert_hides("QUERYSECRET")


def test_a_body_that_cannot_be_sent_again_is_told(
    server: OAuthTestServer, recorder: Recorder
) -> None:
    """A streamed body is not sent again after a 401: ``cannot_resend``."""
    with always(401) as api, requests.Session() as session:
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                             on_event=recorder)
        session.post(api.url("/x"), data=iter([b"a", b"b"]), timeout=10)
    assert [e.reason for e in recorder.of(RequestNotRetried)] == ["cannot_resend"]
    assert recorder.of(RequestRetried) == []


def test_shared_cache_hit_miss_and_failure_are_told(
    server: OAuthTestServer, recorder: Recorder
) -> None:
    """With a shared cache: the first auth misses and fetches, the second hits (a token
    fetched from the cache, no attempt); a failing cache is told and costs no request."""
    cache = MemoryTokenCache()
    first = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=cache,
                                  on_event=recorder)
    first.fetch_token()
    assert recorder.kinds() == ["CacheMiss", "TokenFetched"]
    key = recorder.of(CacheMiss)[0].key
    second_told = Recorder()
    second = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=cache,
                                   on_event=second_told)
    with requests.Session() as session:
        session.auth = second
        assert session.get(server.resource_url, timeout=10).status_code == 200
    assert second_told.kinds() == ["CacheHit", "TokenFetched"]
    hit, fetched = second_told.events
    assert isinstance(hit, CacheHit) and hit.key == key
    assert isinstance(fetched, TokenFetched)
    assert (fetched.source, fetched.attempts) == ("cache", 0)
    assert server.token_requests == 1

    class Broken(MemoryTokenCache):
        def get(self, key: str) -> Any:
            raise OSError("disk on fire: " + CLIENT_SECRET)

    broken_told = Recorder()
    broken = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=Broken(),
                                   on_event=broken_told)
    broken.fetch_token()
    assert broken_told.kinds() == ["CacheFailed", "TokenFetched"]
    failed = broken_told.events[0]
    assert isinstance(failed, CacheFailed)
    assert (failed.operation, failed.error) == ("get", "OSError")
    broken_told.assert_hides(CLIENT_SECRET, "fire")


def test_dpop_nonce_retries_are_told(nonce_server: OAuthTestServer, recorder: Recorder) -> None:
    """A server asking for a DPoP nonce at the token endpoint and at the resource: each
    resend with its nonce is told, naming the server; no proof in any event."""
    auth = ClientCredentialsAuth(nonce_server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 dpop=DPoPKey.generate(), on_event=recorder)
    with requests.Session() as session:
        session.auth = auth
        response = session.get(nonce_server.resource_url, timeout=10)
    assert response.status_code == 200
    assert recorder.of(DPoPNonceRetried) == [
        DPoPNonceRetried(server="token_endpoint", url=nonce_server.token_url),
        DPoPNonceRetried(server="resource", url=nonce_server.resource_url),
    ]
    assert response.request.headers["DPoP"] not in repr(recorder.events)


def test_a_raising_listener_is_logged_and_the_request_goes_on(
    server: OAuthTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The callable's exception is logged (with its type and the event's) and the request
    gets its answer."""
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    with requests.Session() as session:
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                             on_event=broken)
        with caplog.at_level(logging.WARNING, logger="requests_oauthcc.events"):
            assert session.get(server.resource_url, timeout=10).status_code == 200
    assert [r.getMessage() for r in caplog.records] == [
        "the on_event listener raised RuntimeError on TokenFetched; ignored"]


def test_listeners_run_after_the_token_request_and_may_use_the_auth(
    server: OAuthTestServer
) -> None:
    """8 threads need a token at once: one token request, one TokenFetched; the listener
    makes a request with the same auth (it would wait for ever inside the token request)."""
    seen: list[int] = []
    session = requests.Session()

    def listener(event: Event) -> None:
        if isinstance(event, TokenFetched):
            seen.append(session.get(server.resource_url, timeout=10).status_code)

    session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                         on_event=listener)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(
        session.get(server.resource_url, timeout=10).status_code)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    session.close()
    assert not any(thread.is_alive() for thread in threads)
    assert statuses == [200] * 8 and seen == [200]
    assert server.token_requests == 1


def test_on_event_is_checked_and_must_pickle(server: OAuthTestServer) -> None:
    """Not a callable: ConfigurationError at once; a lambda: the auth cannot be pickled,
    and the error names on_event."""
    import pickle

    with pytest.raises(ConfigurationError, match="on_event must be a callable"):
        ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                              on_event="print")  # type: ignore[arg-type]
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 on_event=lambda event: None)
    with pytest.raises(ConfigurationError, match="on_event"):
        pickle.dumps(auth)


def test_without_listeners_no_event_is_built_and_nothing_of_opentelemetry_loaded(
    server: OAuthTestServer,
) -> None:
    """No ``on_event`` and no instrumentation: a token fetch, a 401 retry and a shared
    cache build no event: the events module is never imported, nor OpenTelemetry."""
    with always(401) as api:
        code = f"""
import json, sys, requests
from requests_oauthcc import ClientCredentialsAuth, MemoryTokenCache
auth = ClientCredentialsAuth({server.token_url!r}, {CLIENT_ID!r}, {CLIENT_SECRET!r},
                             cache=MemoryTokenCache())
with requests.Session() as session:
    session.auth = auth
    response = session.get({api.url("/x")!r}, timeout=10)
print(json.dumps([response.status_code, len(response.history), sorted(
    m for m in sys.modules if m == "requests_oauthcc.events" or m.startswith("opentelemetry"))]))
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=60)
    assert json.loads(out.stdout) == [401, 1, []]
    assert server.token_requests == 2

