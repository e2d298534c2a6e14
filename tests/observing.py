"""What the tests of observability listen with: an ``on_event`` recorder and an
OpenTelemetry SDK whose spans and metrics stay in memory (fixtures ``recorder`` and
``telemetry`` in conftest.py)."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from requests_oauthcc.events import Event


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
