"""Reusing tokens: in one process, and across processes through a shared cache.

:class:`TokenHolder` keeps one auth object's token. Threads that find no usable token
wait for a single fetch (single flight) and all get its outcome, token or error.
:class:`SharedTokenSource` extends the single flight to every process using one
:class:`~requests_oauthcc.cache.TokenCache`: one fetches under a lease, the others wait
and read its token from the cache.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable

from .cache import CacheEntry, CacheError, Lease, TokenCache, encode_record, fingerprint
from .token import Token, token_from_record, token_to_record

__all__ = ["SharedTokenSource", "TokenHolder"]

logger = logging.getLogger(__name__)

_FAILED_REFRESH_COOLDOWN = 10.0
"""After a failed early refresh, seconds (at most) before the next one is tried."""


class _Flight:
    """One fetch in progress; followers wait on ``done`` and read its outcome."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: Exception | None = None


class TokenHolder:
    """The token of one auth object: reused until ``leeway`` before expiry, fetched once.

    ``current`` is ``(token, refresh_at)`` or ``None``. It is replaced whole, never
    mutated, so the per-request fast path reads it without a lock.

    When an early refresh fails while the held token has not yet expired, the held token
    keeps being used (the failure is logged) and the refresh is tried again later; once
    the token has expired, the error is raised. Callers waiting on a failed fetch get the
    same error instead of each trying again.
    """

    def __init__(
        self,
        fetch: Callable[[], Token],
        *,
        leeway: float,
        clock: Callable[[], float],
        shared: SharedTokenSource | None = None,
    ) -> None:
        self._fetch = fetch
        self._shared = shared
        self._leeway = leeway
        self._clock = clock
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self.current: tuple[Token, float] | None = None
        _HOLDERS.add(self)

    @property
    def token(self) -> Token | None:
        """The held token, whether or not it is still fresh."""
        current = self.current
        return None if current is None else current[0]

    def get(self, rejected: Token | None = None) -> Token:
        """A token to use now; fetches one unless a fresh one is held.

        ``rejected``: a token the resource server refused; it is never returned, but a
        different token that another thread already fetched is.
        """
        while True:
            with self._lock:
                current = self.current
                now = self._clock()
                if current is not None and current[0] is not rejected:
                    token, refresh_at = current
                    if now < refresh_at:
                        return token
                    if self._flight is not None and not token.is_expired(now):
                        return token  # another thread is refreshing; this one still works
                flight = self._flight
                leader = flight is None
                if flight is None:
                    flight = self._flight = _Flight()
            if leader:
                return self._lead(flight, current, rejected)
            flight.done.wait()
            if flight.token is not None and flight.token is not rejected:
                return flight.token
            if flight.error is not None:
                raise flight.error
            # The leader was interrupted (KeyboardInterrupt, SystemExit): try again.

    def _lead(
        self, flight: _Flight, previous: tuple[Token, float] | None, rejected: Token | None
    ) -> Token:
        try:
            token = self._fetch() if self._shared is None else self._shared.fetch(rejected)
        except Exception as exc:
            flight.error = exc
            flight.token = self._fallback(previous, rejected, exc)
        else:
            flight.token = token
            with self._lock:
                self.current = (token, token.refresh_at(self._leeway))
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()
        if flight.token is None:
            assert flight.error is not None
            raise flight.error
        return flight.token

    def _fallback(
        self, previous: tuple[Token, float] | None, rejected: Token | None, exc: Exception
    ) -> Token | None:
        """The held token, if it may stand in for the failed refresh."""
        if previous is None or previous[0] is rejected:
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
            if current is not None and (rejected is None or current[0] is rejected):
                self.current = None
        if self._shared is not None and rejected is not None:
            self._shared.discard(rejected)

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._flight = None


class SharedTokenSource:
    """Tokens shared through a :class:`TokenCache` by every process that uses it.

    ``fetch`` is the real token request. A token in the cache is used while it is fresh
    (before its refresh time); otherwise one caller takes the cache's lease and fetches,
    while the others poll the cache for its token, for at most twice the lease's life,
    taking over the lease if the fetcher died. Storage failures never fail a request:
    they are logged and the token is fetched directly.
    """

    def __init__(
        self,
        cache: TokenCache,
        key: str,
        fetch: Callable[[], Token],
        *,
        leeway: float,
        clock: Callable[[], float],
    ) -> None:
        self.cache = cache
        self.key = key
        self._fetch = fetch
        self._leeway = leeway
        self._clock = clock

    def fetch(self, rejected: Token | None = None) -> Token:
        """A fresh token other than ``rejected``: from the cache, or fetched and shared."""
        try:
            return self._fetch_shared(rejected)
        except CacheError as exc:
            logger.warning(
                "token cache %r failed (%s); fetching the token directly", self.cache, exc
            )
            return self._fetch()

    def discard(self, rejected: Token) -> None:
        """Remove ``rejected`` from the cache if it is still the token stored there."""
        try:
            self.cache.delete(self.key, fingerprint(rejected.access_token))
        except CacheError as exc:
            logger.warning("token cache %r failed to drop a rejected token: %s", self.cache, exc)

    def _fetch_shared(self, rejected: Token | None) -> Token:
        rejected_print = None if rejected is None else fingerprint(rejected.access_token)
        deadline = time.monotonic() + 2 * self.cache.lease_ttl
        pause = 0.02
        while True:
            token = self._read(rejected_print)
            if token is not None:
                return token
            lease = self.cache.lease(self.key)
            if lease is not None:
                return self._fetch_under(lease, rejected_print)
            if time.monotonic() >= deadline:
                logger.warning(
                    "no token appeared in %r for key %s within %.0fs; fetching directly",
                    self.cache, self.key, 2 * self.cache.lease_ttl,
                )
                return self._fetch()
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _fetch_under(self, lease: Lease, rejected_print: str | None) -> Token:
        try:
            token = self._read(rejected_print)  # stored between our read and our lease
            if token is not None:
                return token
            token = self._fetch()
            self._write(token)
            return token
        finally:
            try:
                lease.release()
            except CacheError as exc:
                logger.warning("token cache %r failed to release a lease: %s", self.cache, exc)

    def _read(self, rejected_print: str | None) -> Token | None:
        entry = self.cache.get(self.key)
        if entry is None or entry.fingerprint == rejected_print:
            return None
        try:
            token = token_from_record(json.loads(entry.payload), self._clock(), time.time())
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.warning("unreadable entry for key %s in %r: treated as a miss",
                           self.key, self.cache)
            return None
        if fingerprint(token.access_token) != entry.fingerprint:
            return None
        return token if self._clock() < token.refresh_at(self._leeway) else None

    def _write(self, token: Token) -> None:
        now = self._clock()
        remaining = token.expires_in(now)
        record = token_to_record(token, now, time.time())
        entry = CacheEntry(fingerprint(token.access_token), encode_record(record))
        try:
            self.cache.set(self.key, entry, math.inf if remaining is None else remaining)
        except CacheError as exc:
            logger.warning("token cache %r failed to store the new token: %s", self.cache, exc)


_HOLDERS: weakref.WeakSet[TokenHolder] = weakref.WeakSet()


def _reset_holders_after_fork() -> None:
    """In a forked child no other thread exists: locks held by them must not be inherited."""
    for holder in list(_HOLDERS):
        holder._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_holders_after_fork)
