"""A second outside review attacking observability (issue #15): discovery within the token
request span, exact counts under concurrency, what spans name, and the OpenTelemetry API
the ``[otel]`` extra admits. Real loopback servers; each test names the attack and what
must hold."""

from __future__ import annotations

import configparser
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    DiscoveryError,
    MemoryTokenCache,
    TokenEndpointError,
    otel,
)
from requests_oauthcc.events import Event, RequestRetried, TokenFetched, TokenRequestFailed
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, settle
from .rawserver import RawRequest, RawServer, raw_response
from .test_events import Recorder
from .test_otel import Telemetry


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    otel.instrument(tracer_provider=recorded.tracer_provider,
                    meter_provider=recorded.meter_provider)
    try:
        yield recorded
    finally:
        otel.uninstrument()


def counted(telemetry: Telemetry, name: str) -> dict[str, int]:
    """``{attribute values joined: value}`` of metric ``name``."""
    return {",".join(f"{k}={v}" for k, v in sorted(attributes)): value
            for (metric, attributes), value in telemetry.metrics().items() if metric == name}


# -- discovery within the span ------------------------------------------------------------


@pytest.mark.parametrize("token_endpoint", [
    "https://127.0.0.1:99999/token",  # a port out of range: urllib3 cannot parse it
    "http://user:pw-from-metadata@127.0.0.1:{port}/token",  # user info, refused in token_url
])
def test_a_discovered_token_endpoint_follows_the_token_url_rule_and_fails_as_told(
    token_endpoint: str, recorder: Recorder, telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Attack: the issuer's metadata names a token endpoint that a configured ``token_url``
    could not be (``ConfigurationError`` at construction): a port out of range, or user info.
    The first made every request raise urllib3's ``LocationParseError``, a bare
    ``ValueError``: no ``TokenRequestFailed`` for ``on_event`` (only requests errors were
    told) while the span counted an error, the single flight did not share it (each waiting
    thread discovered again) and the CLI said "unexpected error, please report it". The
    second was used, its user info shown in every log line naming the token URL. Both must
    be a ``DiscoveryError``, told to ``on_event`` and counted alike, the user info in no log."""
    caplog.set_level(logging.DEBUG, logger="requests_oauthcc")
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as server:
        server.metadata_overrides["token_endpoint"] = token_endpoint.format(port=server.port)
        auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET,
                                                 on_event=recorder)
        with pytest.raises(DiscoveryError, match="no usable token_endpoint"):
            auth.fetch_token()
        assert server.token_requests == 0
    assert [e.error for e in recorder.of(TokenRequestFailed)] == ["DiscoveryError"]
    (span,) = telemetry.token_spans()
    assert (span.attributes or {})["error.type"] == "DiscoveryError"
    assert counted(telemetry, "oauthcc.token.requests") == {
        "error.type=DiscoveryError,outcome=error": 1}
    assert "pw-from-metadata" not in caplog.text


def test_the_first_token_fetched_times_the_discovery_as_the_span_does(
    recorder: Recorder, telemetry: Telemetry
) -> None:
    """Attack on consistency: the issuer's metadata takes 0.3 s to come. The first token
    request of a ``from_issuer`` auth spans its discovery (span and duration histogram:
    0.3 s and more), and a failed one's ``TokenRequestFailed.duration`` includes it; its
    ``TokenFetched.duration`` ("seconds from the start of the token request") left it out,
    so events and metrics disagreed about the same request. Both must include it."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as server:
        def slow_metadata(request: RawRequest) -> list[tuple[float, bytes]]:
            document = {"issuer": issuer.url(""), "token_endpoint": server.token_url}
            return [(0.3, raw_response(200, json.dumps(document).encode(),
                                       {"Content-Type": "application/json"}))]

        with RawServer(slow_metadata) as issuer:
            auth = ClientCredentialsAuth.from_issuer(issuer.url(""), CLIENT_ID, CLIENT_SECRET,
                                                     on_event=recorder)
            auth.fetch_token()
            auth.fetch_token()  # endpoint known: no discovery
    first, second = recorder.of(TokenFetched)
    spans = telemetry.token_spans()
    span_seconds = [((s.end_time or 0) - (s.start_time or 0)) / 1e9 for s in spans]
    assert span_seconds[0] >= 0.3 and first.duration >= 0.3
    assert first.duration <= span_seconds[0]
    assert second.duration < 0.3


def test_an_ipv6_token_endpoint_is_named_by_its_address(telemetry: Telemetry) -> None:
    """Attack on the span's attributes: a token URL on an IPv6 literal (``[::1]``) gave
    ``server.address`` ``"[::1]"``, the URL's bracketed form, where the semantic
    conventions (and OpenTelemetry's requests instrumentation, whose HTTP span sits under
    ours) say the IP address, ``"::1"``: the two spans of one request did not match."""
    auth = ClientCredentialsAuth("http://[::1]:9/token", CLIENT_ID, CLIENT_SECRET, retries=0,
                                 timeout=2)
    with pytest.raises(TokenEndpointError):
        auth.fetch_token()
    (span,) = telemetry.token_spans()
    attributes = span.attributes or {}
    assert (attributes["server.address"], attributes["server.port"]) == ("::1", 9)


def test_uninstrument_during_a_token_request_counts_its_lookup_as_its_span(
    recorder: Recorder,
) -> None:
    """Attack: ``otel.uninstrument()`` (at shutdown, say) while a token request behind a
    shared-cache miss is in progress. Its span still ended and was counted, but the
    ``CacheMiss`` that led to it, delivered once the request ended, reached no telemetry:
    the lookup counter lost it. Events go to the telemetry in effect when they happened."""
    recorded = Telemetry()
    otel.instrument(tracer_provider=recorded.tracer_provider,
                    meter_provider=recorded.meter_provider)
    try:
        with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, token_delay=0.3) as server:
            auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                         cache=MemoryTokenCache(), on_event=recorder)
            fetching = threading.Thread(target=auth.fetch_token)
            fetching.start()
            while not server.token_requests and fetching.is_alive():  # in progress
                time.sleep(0.01)
            otel.uninstrument()
            fetching.join(10)
    finally:
        otel.uninstrument()
    assert recorder.kinds() == ["CacheMiss", "TokenFetched"]
    assert len(recorded.token_spans()) == 1
    assert counted(recorded, "oauthcc.token.requests") == {"outcome=success": 1}
    assert counted(recorded, "oauthcc.cache.lookups") == {"result=miss": 1}


# -- exact counts under concurrency -------------------------------------------------------


def test_a_401_storm_during_a_refresh_ahead_counts_each_request_and_retry_once(
    recorder: Recorder, telemetry: Telemetry
) -> None:
    """Attack on exact counts: the held token is due for a refresh ahead (slow endpoint)
    when the API revokes it, and 8 threads call at once: each gets a 401. One token request
    (the refresh, which the rejections wait for) must serve them all: 2 token requests in
    all, 2 spans, 2 ``TokenFetched`` (one in the refresh thread), 8 retries counted once
    each, no failure, nothing told twice."""
    threads_of: list[str] = []

    def on_event(event: Event) -> None:
        threads_of.append(threading.current_thread().name)
        recorder(event)

    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, token_lifetime=100) as server:
        clock = FakeClock()
        session = requests.Session()
        session.auth = auth = ClientCredentialsAuth(
            server.token_url, CLIENT_ID, CLIENT_SECRET, clock=clock, on_event=on_event)
        assert session.get(server.resource_url, timeout=10).status_code == 200
        clock.advance(95)  # due for refresh, still valid
        server.revoke_all()
        server.token_delay = 0.2
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def call() -> None:
            barrier.wait()
            statuses.append(session.get(server.resource_url, timeout=10).status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        settle(auth)
        assert statuses == [200] * 8 and server.token_requests == 2
    assert Counter(recorder.kinds()) == {"TokenFetched": 2, "RequestRetried": 8}
    assert len({e.token for e in recorder.of(RequestRetried)}) == 1
    assert "requests-oauthcc refresh" in threads_of
    assert len(telemetry.token_spans()) == 2
    assert counted(telemetry, "oauthcc.token.requests") == {"outcome=success": 2}
    assert counted(telemetry, "oauthcc.api.retries") == {"reason=invalid_token": 8}


# -- what the [otel] extra admits -----------------------------------------------------------


def test_the_otel_extra_requires_an_api_that_takes_bucket_advice() -> None:
    """Attack: install the ``[otel]`` extra next to an OpenTelemetry pinned by another
    package at 1.23 to 1.29, which ``opentelemetry-api>=1.23`` admits: ``instrument()``
    raised ``TypeError`` (``create_histogram() got an unexpected keyword argument
    'explicit_bucket_boundaries_advisory'``; the advisory came with 1.30, reproduced with
    opentelemetry-api 1.29.0). The extras must name 1.30 at least."""
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    extras = config["options.extras_require"]
    floors = re.findall(r"^opentelemetry-(?:api|sdk)>=([\d.]+)$",
                        extras["otel"] + extras["test"], re.MULTILINE)
    assert len(floors) == 3
    assert all(tuple(map(int, floor.split("."))) >= (1, 30) for floor in floors)
