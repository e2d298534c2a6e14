"""Reusing one auth object's token, and making its threads share one fetch.

:class:`TokenHolder` keeps the token. Threads that find no usable token wait for a single
fetch (single flight) and all get its outcome, token or error, as soon as it is known: a
fetch is bounded in time (:meth:`~requests_oauthcc.endpoint.TokenEndpoint.fetch`), so
they wait no longer than it takes. A token due for refresh but still valid is refreshed
ahead, off the request path: one short-lived thread fetches while requests go on with the
held token. With a shared cache, the
fetch goes through :class:`~requests_oauthcc.shared.SharedTokenSource`, which extends the
single flight to every process using the cache.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import requests

from ._flights import Flight, Refresher, fresh
from ._observers import Observers, request_failed
from .rejections import RejectionPause
from .token import Token, renewed

if TYPE_CHECKING:
    from .shared import SharedTokenSource

__all__ = ["TokenHolder"]

logger = logging.getLogger(__name__)

_FAILED_REFRESH_COOLDOWN = 10.0
"""After a failed early refresh, seconds (at most) before the next one is tried."""

MIN_REFRESH_INTERVAL = 1.0
"""Seconds a token is used, at least, from the moment it arrives, before the next token
request that no API rejection forced: however a server answers (the same token counting
down, tiny or rounded lifetimes, a lifetime shorter than the round trip), one auth object
makes at most about one such request per second, never one per API request."""


class TokenHolder:
    """The token of one auth object: reused until ``leeway`` before expiry, fetched once.

    ``current`` is ``(token, refresh_at)`` or ``None``. It is replaced whole, never
    mutated, so the per-request fast path reads it without a lock.

    A fetch that fails with no token to stand in is not tried again for
    :data:`MIN_REFRESH_INTERVAL`: requests in that second get the same error at once (a
    401 retry still fetches), so an endpoint refusing the client is not asked once per API
    request.

    A token is used for at least :data:`MIN_REFRESH_INTERVAL` after it arrives, even if
    its lifetime says it is due for refresh (or past its expiry by the client's cautious
    estimate): the server granted it a moment ago, and if the API refuses it, the 401
    forces a new one. A refresh answered with the token already held (gateways that keep
    one token per client) keeps the later expiry (:func:`~requests_oauthcc.token.renewed`)
    and is not asked again before that token expires.

    **Refresh ahead.** When the held token reaches its refresh time while still valid, the
    first request to notice starts one thread (named ``requests-oauthcc refresh``) that
    fetches the new token, and every request, that one included, goes on with the held
    token without waiting. The thread ends with its fetch: none runs while nothing needs a
    refresh. Only a request that finds no valid token waits (for the single flight).
    :meth:`close` waits for a refresh in progress (bounded like any fetch) and makes later
    refreshes happen on the request path; a forked child starts with no refresh running.

    When an early refresh fails while the held token has not yet expired, the held token
    keeps being used (the failure is logged) and the refresh is tried again later; once
    the token has expired, the error is raised. Callers waiting on a failed fetch get the
    same error instead of each trying again.

    Only a failure of the fetch itself is shared: an ``OAuthError`` or another requests
    error. Anything else raised in the fetching thread (``KeyboardInterrupt``, an exception
    raised by a signal handler, which Python delivers to the main thread wherever it is)
    belongs to that thread alone: it is raised there, and the waiting threads try again,
    one of them fetching.
    """

    def __init__(
        self,
        fetch: Callable[[], Token],
        *,
        leeway: float,
        clock: Callable[[], float],
        shared: SharedTokenSource | None = None,
        observers: Observers | None = None,
    ) -> None:
        self._fetch = fetch
        self._observers = observers
        self._shared = shared
        self._leeway = leeway
        self._clock = clock
        self._lock = threading.Lock()
        self._flight: Flight | None = None
        self._failure: tuple[float, requests.RequestException] | None = None
        self._replaced: tuple[float, str] | None = None
        """When a fetch forced by a rejection last ran, and the rejected ``Authorization``."""
        self._received = -math.inf
        """When the current token arrived (this holder's clock)."""
        self.rejections = RejectionPause()
        """Pauses token requests forced by rejections while an API rejects new tokens."""
        self._took = 0.0
        """Seconds the last fetch took, from the moment it was found needed."""
        self._ahead: Refresher | None = None
        """The thread of the last refresh ahead (finished, or running)."""
        self._closed = False
        self.current: tuple[Token, float] | None = None
        _HOLDERS.add(self)

    @property
    def token(self) -> Token | None:
        """The held token, whether or not it is still fresh."""
        current = self.current
        return None if current is None else current[0]

    def received_at(self, token: Token) -> float | None:
        """When ``token`` arrived (clock reading), if it is (by value) the current token."""
        current = self.current
        return self._received if current is not None and _same(current[0], token) else None

    def get(self, rejected: Token | None = None, *, force: bool = False) -> Token:
        """A token to use now; fetches one unless a fresh one is held.

        ``rejected``: a token the resource server refused (compared by value: a gateway
        may hand out the same value again); a different token that another thread already
        fetched is returned, else a new one is fetched. Only when a fetch forced by the
        rejection of that very value ran less than :data:`MIN_REFRESH_INTERVAL` ago and
        the server answered the same value again, or while :attr:`rejections` pauses token
        requests forced by rejections, the held token (that value, maybe) is returned:
        callers compare, and do not resend. A token due for refresh but still valid is
        returned at once, a refresh ahead started in the background. ``force``: an
        explicit fetch (``fetch_token()``): not held back by a recent failure, and if it
        fails, the held token stays.
        Raises what the fetch raised (each caller but the fetching one gets a copy).
        """
        while True:
            with self._lock:
                current = self.current
                held, ahead = self._held(current, self._clock(), rejected, force)
                flight = self._flight
                leader = held is None and flight is None
                if leader:
                    flight = self._flight = Flight(self._clock())
            if held is not None:
                if ahead is not None:  # started outside the lock: a start waits for the GIL
                    self._start(ahead)
                return held
            assert flight is not None
            if leader:
                return self._lead(flight, current, rejected, force)
            flight.done.wait()
            if flight.token is not None and not _same(flight.token, rejected):
                return flight.token
            if flight.error is not None:
                raise fresh(flight.error)
            # The leader was interrupted by something that is not a failure of the fetch
            # (KeyboardInterrupt, a signal handler's exception): try again.

    def _held(self, current: tuple[Token, float] | None, now: float, rejected: Token | None,
              force: bool) -> tuple[Token | None, Refresher | None]:
        """With the lock held: the token :meth:`get` returns without waiting for a fetch,
        or ``None`` (a fetch is needed), and the thread to start to refresh ahead, if one is
        due. Raises a failure of a moment ago instead of fetching again."""
        if current is not None and not _same(current[0], rejected):
            token, refresh_at = current
            if now < refresh_at:
                return token, None
            if not token.is_expired(now):
                if self._flight is not None:
                    return token, None  # a refresh is running; this token still works
                if not force and not self._closed:
                    return token, self._refresh_ahead(current)
        if (rejected is not None and not force and current is not None
                and not current[0].is_expired(now) and self.rejections.remaining(now) > 0):
            # The API rejected a brand-new token a moment ago: a new token is not what it
            # wants. The held one (the rejected one, maybe) is returned.
            return current[0], None
        failure = self._failure
        recent_failure = (failure is not None and self._flight is None
                          and now - failure[0] < MIN_REFRESH_INTERVAL)
        replaced = self._replaced
        if (not force and rejected is not None and replaced is not None
                and self._flight is None and replaced[1] == rejected.authorization
                and now - replaced[0] < MIN_REFRESH_INTERVAL):
            # This very token was replaced (or tried to be) a moment ago: the server
            # answered it again, or failed. Not a token request per call.
            if current is not None and (_same(current[0], rejected)
                                        or not current[0].is_expired(now)):
                return current[0], None
            if recent_failure:
                assert failure is not None
                raise fresh(failure[1])
        if not force and rejected is None and recent_failure:
            # A fetch failed a moment ago and no token stands in: the same answer, not a
            # token request per API request while the endpoint refuses.
            assert failure is not None
            raise fresh(failure[1])
        return None, None

    def _refresh_ahead(self, current: tuple[Token, float]) -> Refresher:
        """The one thread that refreshes ``current`` while requests go on with it, to be
        started (:meth:`_start`) once the lock is released.

        Called with the lock held and no flight running; the flight is the thread's.
        """
        flight = self._flight = Flight(self._clock())

        def refresh() -> None:
            try:
                self._lead(flight, current, None)
            except requests.RequestException as exc:  # expired meanwhile: waiters have it
                logger.warning("token refresh ahead of expiry failed: %s", exc)
            except Exception as exc:  # a thread of ours never dies with a traceback dump
                logger.error("token refresh ahead of expiry failed unexpectedly: %s",
                             type(exc).__name__)

        # Kept (finished) until the next refresh ahead, so close() joins it to its very end.
        thread = Refresher(refresh, flight)
        self._ahead = thread
        return thread

    def _start(self, thread: Refresher) -> None:
        """Start the refresh ``thread``. If it never runs (no more threads at interpreter
        shutdown; an interrupt raised in this request before the start), its flight ends
        with no outcome, so that nobody waits for it (waiters then fetch themselves); the
        interrupt is raised on, a failure to start is not: the held token is returned."""
        try:
            thread.start()
        except BaseException as exc:
            if thread.ident is None:
                with self._lock:
                    if self._ahead is thread:
                        self._ahead = self._flight = None
                thread.flight.done.set()
            if not isinstance(exc, RuntimeError):
                raise

    def close(self) -> None:
        """Wait for a refresh ahead in progress to end; later refreshes run on the request
        path (a request after ``close()`` still works), so no thread is started again."""
        with self._lock:
            self._closed = True
            thread = self._ahead
        if thread is not None and thread is not threading.current_thread():
            thread.flight.done.wait()  # it may not be started yet: join() would refuse
            if thread.ident is not None:
                thread.join()

    def _lead(
        self, flight: Flight, previous: tuple[Token, float] | None, rejected: Token | None,
        force: bool = False,
    ) -> Token:
        """Run ``flight``: fetch, install the token or share the failure, end the flight.
        Events of the fetch reach the listeners once the flight has ended."""
        if not self._observers:
            return self._fly(flight, previous, rejected, force)
        with self._observers.held():
            return self._fly(flight, previous, rejected, force)

    def _fly(
        self, flight: Flight, previous: tuple[Token, float] | None, rejected: Token | None,
        force: bool,
    ) -> Token:
        began = time.monotonic()
        failed: requests.RequestException | None = None
        try:
            if self._shared is None:
                token = self._fetch()
            else:  # the held token is due (or gone): the cache's copy of it is no answer
                due = previous[0] if rejected is None and previous is not None else rejected
                token = self._shared.fetch(due)
        except requests.RequestException as exc:  # the fetch failed: shared with the waiters
            failed = exc
            # Kept (and handed to the others) as a copy taken now, so that nothing this
            # thread's callers add to the one they get, frames included, reaches them.
            flight.error = fresh(exc)
            flight.token = self._fallback(previous, rejected, exc)
            if not force:  # a failed fetch_token() leaves the held token in use
                self._remember_failure(flight.error, rejected, flight.token is None)
        else:
            flight.token = self._install(token, previous, rejected, flight.started)
        finally:
            # Whatever happened (anything not caught above stays in this thread), the
            # flight ends; nested so that an exception raised meanwhile still wakes them.
            try:
                with self._lock:
                    self._flight = None
            finally:
                flight.done.set()
        if failed is not None and self._observers:
            # fetch_token() keeps the held token without handing it to waiters: in use
            # all the same while it is valid.
            kept = force and previous is not None and not previous[0].is_expired(self._clock())
            request_failed(self._observers, failed, duration=time.monotonic() - began,
                           using_held_token=flight.token is not None or kept)
        if flight.token is None:
            assert failed is not None
            raise failed
        return flight.token

    def _install(
        self, token: Token, previous: tuple[Token, float] | None, rejected: Token | None,
        started: float,
    ) -> Token:
        """Make a fetched token current, with its refresh time; what to hand out.

        ``started``: when the fetch was found needed. How long it took sets how early the
        next refresh ahead starts (:meth:`_refresh_time`)."""
        held = None if previous is None else previous[0]
        token = renewed(held, token)
        now = self._clock()
        self._took = max(0.0, now - started)
        if held is not None and held.access_token == token.access_token:
            # The server keeps one token per client: asking again before it expires would
            # only bring the same token back; once it has, not for a second.
            refresh_at = token.expires_at if token.expires_at is not None else math.inf
            if refresh_at <= now:
                refresh_at = now + MIN_REFRESH_INTERVAL
        else:
            refresh_at = max(self._refresh_time(token), now + MIN_REFRESH_INTERVAL)
        with self._lock:
            self.current = (token, refresh_at)
            self._received = now
            self._failure = None
            if rejected is not None:
                self._replaced = (now, rejected.authorization)
        return token

    def _refresh_time(self, token: Token) -> float:
        """When to start refreshing ``token`` ahead: :meth:`~requests_oauthcc.token.Token.
        refresh_at`, or earlier when the last fetch took more than half the margin left
        before expiry (a slow endpoint, threads starving the refresh of the GIL): then
        twice that long before expiry, but not before half the token's life, so the new
        token arrives while the held one is still valid."""
        refresh_at = token.refresh_at(self._leeway)
        if token.expires_at is not None:
            early = max(token.expires_at - 2 * self._took,
                        token.issued_at + (token.expires_at - token.issued_at) / 2)
            refresh_at = min(refresh_at, early)
        return refresh_at

    def _remember_failure(
        self, error: requests.RequestException, rejected: Token | None, unbridged: bool
    ) -> None:
        """After a failed fetch: with no token standing in, the error answers for a second
        and a rejected token is not sent again; a rejection is not re-fetched for a second."""
        with self._lock:
            now = self._clock()
            if unbridged:
                self._failure = (now, error)
                if self.current is not None and _same(self.current[0], rejected):
                    self.current = None
            if rejected is not None:
                self._replaced = (now, rejected.authorization)

    def _fallback(
        self, previous: tuple[Token, float] | None, rejected: Token | None, exc: Exception
    ) -> Token | None:
        """The held token, if it may stand in for the failed refresh."""
        if previous is None or _same(previous[0], rejected):
            return None
        token = previous[0]
        now = self._clock()
        remaining = token.expires_in(now)
        if remaining is not None and remaining <= 0:
            return None
        cooldown = _FAILED_REFRESH_COOLDOWN if remaining is None else min(
            _FAILED_REFRESH_COOLDOWN, remaining / 2
        )
        logger.warning(
            "token refresh failed; using the current token, which expires in %s: %s",
            "(unknown)" if remaining is None else f"{remaining:.1f}s", exc,
        )
        with self._lock:
            if self.current is previous:
                self.current = (token, now + cooldown)
        return token

    def invalidate(self, rejected: Token | None = None) -> None:
        """Drop the held token; with ``rejected``, only if it is still that token.

        A shared cache drops the rejected token too, if it still holds it.
        """
        with self._lock:
            current = self.current
            if current is not None and (rejected is None or _same(current[0], rejected)):
                self.current = None
            if rejected is None:
                self._failure = None  # asked for a new token: try again at once
        if self._shared is not None and rejected is not None:
            self._shared.discard(rejected)

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self.rejections = RejectionPause()
        self._flight = None
        self._ahead = None  # the parent's thread does not exist here
        self._failure = None
        self._replaced = None


def _same(token: Token, other: Token | None) -> bool:
    """Whether ``other`` is ``token`` or carries the same value (a gateway's new copy)."""
    return token is other or (other is not None and token.authorization == other.authorization)


_HOLDERS: weakref.WeakSet[TokenHolder] = weakref.WeakSet()


def _reset_holders_after_fork() -> None:
    """In a forked child no other thread exists: locks held by them must not be inherited."""
    for holder in list(_HOLDERS):
        holder._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_holders_after_fork)
