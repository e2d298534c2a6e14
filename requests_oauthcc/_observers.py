"""Who hears about what an auth object does: its ``on_event`` callable and, once
:func:`requests_oauthcc.otel.instrument` has been called, OpenTelemetry.

Every place that has something to tell asks first (``if observers:``), so that with no
callable and no instrumentation no event is built and :mod:`~requests_oauthcc.events` is
not even imported. Nothing here is on the per-request path: events come from token
requests, shared caches and refused API requests only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from .events import Event
    from .token import Token

__all__ = ["Observers", "Telemetry", "TokenRequestTrace", "fetched", "request_failed"]

logger = logging.getLogger("requests_oauthcc.events")


class TokenRequestTrace(Protocol):
    """What a token request tells the telemetry while it runs."""

    def responded(self, status_code: int) -> None:
        """The token endpoint answered an attempt with ``status_code``."""

    def sent_to(self, token_url: str) -> None:
        """The token endpoint is ``token_url`` (found by discovery within the request)."""


class Telemetry(Protocol):
    """An instrumentation of every auth object (:mod:`requests_oauthcc.otel`)."""

    def on_event(self, event: Event) -> None:
        """Hear ``event`` (after the auth's own callable)."""

    def token_request(self, url: str, client_id: str
                      ) -> AbstractContextManager[TokenRequestTrace]:
        """Wraps one token request to ``url`` (the token endpoint, or the issuer when the
        first request discovers it), all its attempts: raises what the request raised."""


class _Held(threading.local):
    depth = 0
    events: list[tuple[Observers, Event, Telemetry | None]]


_held = _Held()


class Observers:
    """The listeners of one auth object: ``on_event`` (``None``: none) and the telemetry.

    False when nobody listens: callers build no event then.
    """

    __slots__ = ("on_event",)

    telemetry: ClassVar[Telemetry | None] = None
    """The instrumentation of every auth object, or ``None``; set by
    :func:`requests_oauthcc.otel.instrument`."""

    def __init__(self, on_event: Callable[[Event], object] | None) -> None:
        self.on_event = on_event

    def __bool__(self) -> bool:
        return self.on_event is not None or Observers.telemetry is not None

    def emit(self, event: Event) -> None:
        """Deliver ``event`` now, or when the token request of this thread has ended
        (:meth:`held`); to the telemetry in effect now, as the request's span is (an
        ``uninstrument()`` meanwhile does not leave a lookup uncounted)."""
        if _held.depth:
            _held.events.append((self, event, Observers.telemetry))
        else:
            self._deliver(event, Observers.telemetry)

    def _deliver(self, event: Event, telemetry: Telemetry | None) -> None:
        listeners = (self.on_event, None if telemetry is None else telemetry.on_event)
        for listener in listeners:
            if listener is None:
                continue
            try:
                listener(event)
            except Exception as exc:  # a listener's bug never fails the request
                logger.warning("the %s listener raised %s on %s; ignored",
                               "on_event" if listener is self.on_event else "telemetry",
                               type(exc).__name__, type(event).__name__, exc_info=True)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Events emitted in this thread within the block are delivered when it ends: a
        listener never runs inside a token request, where using the same auth would wait
        for the request it is part of. Nested blocks deliver at the outermost end."""
        if not _held.depth:
            _held.events = []
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
            if not _held.depth:
                events, _held.events = _held.events, []
                for observers, event, telemetry in events:
                    observers._deliver(event, telemetry)


def request_failed(observers: Observers, error: Exception, *, duration: float,
                   using_held_token: bool) -> None:
    """Emit :class:`~requests_oauthcc.events.TokenRequestFailed` for ``error``, named from
    a bounded set (:func:`~requests_oauthcc.errors.error_type`)."""
    from .errors import error_type
    from .events import TokenRequestFailed

    observers.emit(TokenRequestFailed(
        error=error_type(error), status_code=getattr(error, "status_code", None),
        duration=duration, using_held_token=using_held_token))


def fetched(observers: Observers, token: Token, *, source: str, duration: float,
            attempts: int, now: float) -> None:
    """Emit :class:`~requests_oauthcc.events.TokenFetched` for ``token`` (``now``: a reading
    of the clock of its ``expires_at``)."""
    from .events import TokenFetched, short_fingerprint

    observers.emit(TokenFetched(
        source=source, expires_in=token.expires_in(now), duration=duration, attempts=attempts,
        token_type=token.token_type, token=short_fingerprint(token.access_token)))
