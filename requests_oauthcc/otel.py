"""OpenTelemetry for every auth object: a span per token request, four metrics.

::

    from requests_oauthcc import otel

    otel.instrument()  # once, at start-up; otel.uninstrument() turns it off

Needs the ``[otel]`` extra (``opentelemetry-api``); the SDK, exporters and providers are
the application's. Until :func:`instrument` is called nothing of OpenTelemetry is
imported, and the per-request path is the same whether it is called or not: what is
recorded happens at token requests, shared-cache lookups and refused API requests.

**Span** ``oauthcc.token_request``, a client span around each token request (its retries
of transient failures included, and the discovery of the token endpoint by the first
request of an auth built ``from_issuer``: a metadata failure is a failed token request,
``error.type`` ``DiscoveryError``), a child of the span current where the token was needed
(for a refresh ahead of expiry, of the request that started it). Attributes:
``http.request.method`` (``POST``), ``server.address``, ``server.port``,
``http.response.status_code`` (of the answer that ended it: none when the last try got no
answer, whatever an earlier one got), ``oauth.client_id`` (when the client has
one), ``oauth.grant_type`` (``client_credentials``) and, on failure, ``error.type``: the
OAuth error code when it is a registered one (``invalid_client``, ...), else the
exception's type name; the span's status is then ``ERROR``. Never the URL's path or query,
a secret, an assertion, a token or a server's error text.

**Metrics**, meter ``requests_oauthcc``:

- ``oauthcc.token.requests`` (counter): token requests, ``outcome`` = ``success`` or
  ``error``, with ``error.type`` on errors;
- ``oauthcc.token.request.duration`` (histogram, seconds): the same, timed;
- ``oauthcc.api.retries`` (counter): API requests sent again, ``reason`` =
  ``invalid_token``, ``no_error_code``, ``other_error_code`` (after a 401, or a
  ``refresh_on`` status, with a new token) or ``use_dpop_nonce`` (with a resource
  server's DPoP nonce);
- ``oauthcc.cache.lookups`` (counter): shared-cache lookups, ``result`` = ``hit``,
  ``miss`` or ``error``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._observers import Observers
from .errors import ConfigurationError, error_type

if TYPE_CHECKING:
    from .events import Event

__all__ = ["DURATION_BUCKETS", "instrument", "is_instrumented", "uninstrument"]

_lock = threading.Lock()


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Record spans and metrics for every auth object, those built already included.

    ``tracer_provider`` / ``meter_provider``: OpenTelemetry providers (default: the global
    ones, as set by the SDK or an agent). Calling it again while instrumented does nothing:
    :func:`uninstrument` first to change providers. Raises
    :class:`~requests_oauthcc.ConfigurationError` when ``opentelemetry-api`` is not
    installed (``pip install 'requests-oauthcc[otel]'``).
    """
    with _lock:
        if Observers.telemetry is None:
            Observers.telemetry = _OpenTelemetry(tracer_provider, meter_provider)


def uninstrument() -> None:
    """Stop recording (a token request in progress still ends its span)."""
    with _lock:
        Observers.telemetry = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return Observers.telemetry is not None


class _Trace:
    """What one token request reports while it runs: its last HTTP status, and the token
    endpoint once discovery has found it."""

    __slots__ = ("span", "status_code")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.status_code: int | None = None

    def responded(self, status_code: int) -> None:
        self.status_code = status_code

    def sent_to(self, token_url: str) -> None:
        self.span.set_attributes(_server(token_url))


def _server(url: str) -> dict[str, str | int]:
    """``server.address`` and ``server.port`` of ``url`` (nothing of its path or query);
    an IPv6 address without the brackets of its URL form, as the semantic conventions and
    OpenTelemetry's requests instrumentation name it (``::1``)."""
    from urllib3.util import parse_url

    parsed = parse_url(url)
    host = parsed.host or ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return {"server.address": host,
            "server.port": parsed.port or (443 if parsed.scheme == "https" else 80)}


DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0, 30.0, 60.0)
"""Bucket boundaries (seconds) advised for ``oauthcc.token.request.duration``."""

_LOOKUP_FAILURES = frozenset({"get", "lease"})
"""The cache operations of a lookup (other failures are not lookups)."""


class _OpenTelemetry:
    """The :class:`~requests_oauthcc._observers.Telemetry` that records with OpenTelemetry."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:
            raise ConfigurationError(
                "requests_oauthcc.otel needs OpenTelemetry's API: pip install "
                "'requests-oauthcc[otel]'") from exc
        from . import __version__

        self._trace = trace
        self._tracer = trace.get_tracer("requests_oauthcc", __version__, tracer_provider)
        meter = metrics.get_meter("requests_oauthcc", __version__, meter_provider)
        self._requests = meter.create_counter(
            "oauthcc.token.requests", unit="{request}",
            description="Token requests, by outcome")
        self._duration = meter.create_histogram(
            "oauthcc.token.request.duration", unit="s",
            description="Duration of token requests, retries included",
            # in seconds (the SDK's default buckets are for milliseconds): those of
            # OpenTelemetry's http.client.request.duration, up to the 60 s retry deadline
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self._retries = meter.create_counter(
            "oauthcc.api.retries", unit="{request}",
            description="API requests sent again, by reason")
        self._lookups = meter.create_counter(
            "oauthcc.cache.lookups", unit="{lookup}",
            description="Shared token cache lookups, by result")

    @contextmanager
    def token_request(self, url: str, client_id: str) -> Iterator[_Trace]:
        attributes: dict[str, str | int] = {
            "http.request.method": "POST", **_server(url),
            "oauth.grant_type": "client_credentials",
        }
        if client_id:
            attributes["oauth.client_id"] = client_id
        began = time.monotonic()
        with self._tracer.start_as_current_span(
            "oauthcc.token_request", kind=self._trace.SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False,  # messages quote servers
        ) as span:
            record = _Trace(span)
            try:
                yield record
            except BaseException as exc:
                error = error_type(exc)
                # The answer that ended it, as TokenRequestFailed says: not an earlier try's
                # (a 503 retried, then no answer at all).
                status = getattr(exc, "status_code", None)
                if isinstance(status, int):
                    span.set_attribute("http.response.status_code", status)
                span.set_attribute("error.type", error)
                span.set_status(self._trace.StatusCode.ERROR)
                self._count(began, {"outcome": "error", "error.type": error})
                raise
            if record.status_code is not None:
                span.set_attribute("http.response.status_code", record.status_code)
            self._count(began, {"outcome": "success"})

    def _count(self, began: float, attributes: dict[str, str]) -> None:
        self._requests.add(1, attributes)
        self._duration.record(time.monotonic() - began, attributes)

    def on_event(self, event: Event) -> None:
        from .events import CacheFailed, CacheHit, CacheMiss, DPoPNonceRetried, RequestRetried

        if isinstance(event, RequestRetried):
            self._retries.add(1, {"reason": event.reason})
        elif isinstance(event, DPoPNonceRetried):
            if event.server == "resource":
                self._retries.add(1, {"reason": "use_dpop_nonce"})
        elif isinstance(event, CacheHit):
            self._lookups.add(1, {"result": "hit"})
        elif isinstance(event, CacheMiss):
            self._lookups.add(1, {"result": "miss"})
        elif isinstance(event, CacheFailed) and event.operation in _LOOKUP_FAILURES:
            self._lookups.add(1, {"result": "error"})
