"""OpenTelemetry (issue #15, part 2): a span per token request and four metrics, recorded
with the SDK's in-memory exporter and reader against the local server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from requests_oauthcc import ClientCredentialsAuth, MemoryTokenCache, TokenEndpointError, otel
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, settle


class Telemetry:
    """An SDK tracer and meter provider, instrumented, with what they recorded."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def token_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == "oauthcc.token_request"]

    def duration_bounds(self) -> set[tuple[float, ...]]:
        """The bucket boundaries of every point of the duration histogram."""
        data = self.reader.get_metrics_data()
        return {tuple(point.explicit_bounds)  # type: ignore[union-attr]
                for resource in (data.resource_metrics if data else ())
                for scope in resource.scope_metrics for metric in scope.metrics
                if metric.name == "oauthcc.token.request.duration"
                for point in metric.data.data_points}

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
        """``{(name, attributes): value}``: a counter's sum, a histogram's count."""
        found: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "requests_oauthcc"
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]
                        found[metric.name, frozenset((point.attributes or {}).items())] = value
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    otel.instrument(tracer_provider=recorded.tracer_provider,
                    meter_provider=recorded.meter_provider)
    try:
        yield recorded
    finally:
        otel.uninstrument()


def expected_attributes(server: OAuthTestServer, status: int) -> dict[str, Any]:
    return {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": int(server.token_url.rsplit(":", 1)[1].split("/")[0]),
        "oauth.grant_type": "client_credentials",
        "oauth.client_id": CLIENT_ID,
        "http.response.status_code": status,
    }


def success(n: int) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
    outcome = frozenset({("outcome", "success")})
    return {("oauthcc.token.requests", outcome): n,
            ("oauthcc.token.request.duration", outcome): n}


def test_a_fetch_and_a_refresh_are_two_client_spans_in_the_current_trace(
    server: OAuthTestServer, telemetry: Telemetry, clock: FakeClock
) -> None:
    """The first request's token request and the refresh ahead it later needs: a client
    span each with exactly the attributes named, children of the span current in the
    request that needed them (the refresh's too, though it runs on its own thread); two
    successful token requests counted and timed."""
    tracer = telemetry.tracer_provider.get_tracer("test")
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, clock=clock)
    with requests.Session() as session:
        session.auth = auth
        with tracer.start_as_current_span("first call") as first:
            session.get(server.resource_url, timeout=10)
        clock.advance(3600 - 20)  # due for refresh, still valid: refreshed ahead
        with tracer.start_as_current_span("later call") as later:
            session.get(server.resource_url, timeout=10)
        settle(auth)
    spans = telemetry.token_spans()
    assert len(spans) == 2
    for span, parent in zip(spans, (first, later), strict=True):
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {}) == expected_attributes(server, 200)
        assert span.status.status_code is StatusCode.UNSET
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
    assert telemetry.metrics() == success(2)
    # Buckets in seconds (the SDK's defaults, 0, 5, 10, 25..., are for milliseconds).
    assert telemetry.duration_bounds() == {otel.DURATION_BUCKETS}


def test_a_401_retry_is_counted_with_its_reason(
    server: OAuthTestServer, telemetry: Telemetry
) -> None:
    """A token the API rejects (invalid_token): one retry counted, two token requests."""
    with requests.Session() as session:
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET)
        session.get(server.resource_url, timeout=10)
        server.revoke_all()
        assert session.get(server.resource_url, timeout=10).status_code == 200
    assert len(telemetry.token_spans()) == 2
    assert telemetry.metrics() == {
        **success(2), ("oauthcc.api.retries", frozenset({("reason", "invalid_token")})): 1}


def test_a_failed_token_request_has_its_error_type(
    server: OAuthTestServer, telemetry: Telemetry
) -> None:
    """A wrong secret: the span has error.type invalid_client and the 401, status ERROR,
    no event recorded (the error's text quotes the server); counted as an error. A 503
    with no OAuth error: error.type is the exception's type."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, "wrong-secret", retries=0)
    with pytest.raises(TokenEndpointError):
        auth.fetch_token()
    server.queue_response(503, "down")
    good = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, retries=0)
    with pytest.raises(TokenEndpointError):
        good.fetch_token()
    refused, down = telemetry.token_spans()
    assert dict(refused.attributes or {}) == {
        **expected_attributes(server, 401), "error.type": "invalid_client"}
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.status.description is None and refused.events == ()
    assert dict(down.attributes or {}) == {
        **expected_attributes(server, 503), "error.type": "TokenEndpointError"}
    errors = [frozenset({("outcome", "error"), ("error.type", error)})
              for error in ("invalid_client", "TokenEndpointError")]
    assert telemetry.metrics() == {
        (name, attributes): 1 for attributes in errors
        for name in ("oauthcc.token.requests", "oauthcc.token.request.duration")}


def test_a_shared_cache_hit_is_counted_and_costs_no_token_request(
    server: OAuthTestServer, telemetry: Telemetry
) -> None:
    """Two auth objects sharing a cache: one miss and one token request, then one hit."""
    cache = MemoryTokenCache()
    for _ in range(2):
        ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                              cache=cache).fetch_token()
    assert len(telemetry.token_spans()) == 1
    assert telemetry.metrics() == {
        **success(1),
        ("oauthcc.cache.lookups", frozenset({("result", "miss")})): 1,
        ("oauthcc.cache.lookups", frozenset({("result", "hit")})): 1,
    }


def test_no_query_secret_or_token_reaches_a_span(
    server: OAuthTestServer, telemetry: Telemetry
) -> None:
    """A token URL with a query: its query shows nowhere; nor the secret or the token."""
    auth = ClientCredentialsAuth(server.token_url + "?tenant=QUERYSECRET", CLIENT_ID,
                                 CLIENT_SECRET)
    token = auth.fetch_token()
    (span,) = telemetry.token_spans()
    shown = repr(dict(span.attributes or {})) + span.name + repr(span.events)
    for secret in ("QUERYSECRET", CLIENT_SECRET, token.access_token):
        assert secret not in shown


def test_instrument_is_idempotent_and_uninstrument_stops_it(server: OAuthTestServer) -> None:
    """A second instrument() keeps the first providers; after uninstrument() an auth built
    before records nothing; instrumented again, it records."""
    first, second = Telemetry(), Telemetry()
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET)
    try:
        otel.instrument(tracer_provider=first.tracer_provider,
                        meter_provider=first.meter_provider)
        otel.instrument(tracer_provider=second.tracer_provider,
                        meter_provider=second.meter_provider)
        assert otel.is_instrumented()
        auth.fetch_token()
        otel.uninstrument()
        assert not otel.is_instrumented()
        auth.fetch_token()
        otel.instrument(tracer_provider=second.tracer_provider,
                        meter_provider=second.meter_provider)
        auth.fetch_token()
    finally:
        otel.uninstrument()
    assert (len(first.token_spans()), len(second.token_spans())) == (1, 1)
    assert server.token_requests == 3


def test_instrument_without_opentelemetry_says_what_to_install() -> None:
    """Where opentelemetry-api is missing, instrument() raises ConfigurationError naming
    the extra, and leaves nothing instrumented."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed: importing it fails
from requests_oauthcc import ConfigurationError, otel
try:
    otel.instrument()
except ConfigurationError as exc:
    print(exc, otel.is_instrumented())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ("requests_oauthcc.otel needs OpenTelemetry's API: pip "
                                  "install 'requests-oauthcc[otel]' False")


def test_discovery_is_part_of_the_first_token_request(
    server: OAuthTestServer, telemetry: Telemetry
) -> None:
    """from_issuer: the first token request, metadata included, is one span naming the
    token endpoint's server; the next fetch (endpoint known) one more; two successes."""
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    auth.fetch_token()
    auth.fetch_token()
    spans = telemetry.token_spans()
    assert [dict(span.attributes or {}) for span in spans] == [
        expected_attributes(server, 200)] * 2
    assert telemetry.metrics() == success(2)
