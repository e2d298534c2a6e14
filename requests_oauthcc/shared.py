"""One token for every process using a shared cache: lease, fetch, share, or wait and read.

Imported only when ``cache=`` is given.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from .cache import CacheEntry, CacheError, Lease, TokenCache, encode_record, fingerprint
from .response import NOT_JSON, load_json
from .token import Token, UnusableToken, token_from_record, token_to_record
from .transport import Watchdog

if TYPE_CHECKING:
    from ._observers import Observers
    from ._proofs import Proofs
    from .private_keys import PrivateKey

__all__ = ["SharedTokenSource", "shared_source"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CACHE_OPERATION_SECONDS = 5.0
"""A shared-cache operation taking longer than this (seconds, whole) is abandoned: the
token is then fetched directly."""


def shared_source(
    cache: TokenCache,
    fetch: Callable[[], Token],
    *,
    token_url: str,
    client_id: str,
    auth_method: str,
    secret: object,
    cert: str | tuple[str, str] | None,
    private_key: PrivateKey | None,
    assertion: Callable[[], str] | None,
    form: Sequence[tuple[str, str]],
    audience: str | None,
    dpop: Proofs | None,
    leeway: float,
    clock: Callable[[], float],
    observers: Observers | None = None,
) -> SharedTokenSource:
    """The :class:`SharedTokenSource` of one auth object, under the cache key of everything
    that makes its token different (:func:`~requests_oauthcc.cache_key.cache_key`): the
    grant's form fields, and the credential and DPoP key it is bound to, so that secrets and
    keys never share a token."""
    from .cache_key import CacheKey, CredentialFingerprint

    key = CacheKey(
        CredentialFingerprint(
            token_url, client_id, secret=secret, cert=cert, private_key=private_key,
            assertion=assertion),
        token_url=token_url, client_id=client_id, auth_method=auth_method,
        scope=dict(form).get("scope"), audience=audience,
        resources=[v for k, v in form if k == "resource"],
        extra_params=[(k, v) for k, v in form if k not in ("scope", "audience", "resource")],
        dpop_jkt=None if dpop is None else dpop.key.thumbprint,
    )
    return SharedTokenSource(cache, key, fetch, leeway=leeway, clock=clock,
                             dpop=dpop is not None, observers=observers)


class SharedTokenSource:
    """Tokens shared through a :class:`TokenCache` by every process that uses it.

    ``fetch`` is the real token request. ``key``: the cache key, or a zero-argument
    callable giving it (computed at each fetch, so that it follows a rotated secret; see
    :class:`~requests_oauthcc.cache_key.CredentialFingerprint`). A token in the cache is used
    while it is fresh (before its refresh time); otherwise one caller takes the cache's
    lease and fetches, while the others poll the cache for its token, for at most twice
    the lease's life, taking over the lease if the fetcher died.

    The cache is storage, not authority: an entry becomes a token only if it passes
    :func:`~requests_oauthcc.token.token_from_record` (the rules of a token response) and
    its fingerprint matches; anything else is a logged miss. Every failure of the cache,
    whatever exception the backend raises, is logged and the token fetched directly:
    only the token request itself can fail a request. ``dpop``: whether this client makes
    DPoP proofs, so that a DPoP-bound token in the cache can be used (its key's thumbprint
    is part of the cache key: processes with another key never see it). ``observers``: who
    hears of each lookup's outcome (hit, miss, failure) and of every failure of the cache
    (:mod:`~requests_oauthcc.events`).
    """

    def __init__(
        self,
        cache: TokenCache,
        key: str | Callable[[], str],
        fetch: Callable[[], Token],
        *,
        leeway: float,
        clock: Callable[[], float],
        dpop: bool = False,
        observers: Observers | None = None,
    ) -> None:
        self.cache = cache
        self._observers = observers
        self._dpop = dpop
        self._key = key
        self._fetch = fetch
        self._leeway = leeway
        self._clock = clock

    @property
    def key(self) -> str:
        """The cache key now."""
        return self._key() if callable(self._key) else self._key

    def fetch(self, rejected: Token | None = None) -> Token:
        """A fresh token other than ``rejected``: from the cache, or fetched and shared."""
        try:
            key = self.key
        except Exception as exc:  # resolving the secret failed: the fetch will say why
            logger.debug("no cache key (%s); fetching the token directly", type(exc).__name__)
            return self._fetch()
        try:
            return self._fetch_shared(key, rejected)
        except CacheError as exc:
            logger.warning(
                "token cache %r failed (%s); fetching the token directly", self.cache, exc
            )
            return self._fetch()

    def discard(self, rejected: Token) -> None:
        """Remove ``rejected`` from the cache if it is still the token stored there."""
        try:
            key = self.key
            self._store(lambda: self.cache.delete(key, fingerprint(rejected.access_token)),
                        "delete", key)
        except Exception as exc:
            logger.warning("token cache %r failed to drop a rejected token: %s", self.cache, exc)

    def _store(self, operation: Callable[[], _T], name: str, key: str) -> _T:
        """Run the cache operation ``name`` for ``key``; whatever it raises becomes a
        :class:`CacheError` (and a :class:`~requests_oauthcc.events.CacheFailed` event).

        A hostile or broken store may make a backend raise anything (``OSError``,
        ``UnicodeError``, ``RecursionError``, ``ValueError``, a client library's errors);
        none of it may fail the request. The message names the exception type only: its
        text could quote the stored entry. Each operation is bounded in time, whole
        (:data:`CACHE_OPERATION_SECONDS`): a store that trickles its answer (a socket
        timeout bounds each read, not the call) has its socket shut down.
        """
        watchdog = Watchdog(time.monotonic() + CACHE_OPERATION_SECONDS)
        try:
            with watchdog:
                return operation()
        except Exception as exc:
            late = (f" (no answer within {CACHE_OPERATION_SECONDS:g}s)"
                    if watchdog.interrupted else "")
            if self._observers:
                from .events import CacheFailed

                self._observers.emit(CacheFailed(operation=name, key=key,
                                                 error=f"{type(exc).__name__}{late}"))
            if isinstance(exc, CacheError):
                raise
            raise CacheError(f"the cache raised {type(exc).__name__}{late}") from exc

    def _fetch_shared(self, key: str, rejected: Token | None) -> Token:
        rejected_print = None if rejected is None else fingerprint(rejected.access_token)
        began = time.monotonic()
        deadline = began + 2 * self.cache.lease_ttl
        pause = 0.02
        while True:
            token = self._read(key, rejected_print)
            if token is not None:
                return self._hit(key, token, began)
            lease = self._store(lambda: self.cache.lease(key), "lease", key)
            if lease is not None:
                return self._fetch_under(key, lease, rejected_print, began)
            if time.monotonic() >= deadline:
                logger.warning(
                    "no token appeared in %r for key %s within %.0fs; fetching directly",
                    self.cache, key, 2 * self.cache.lease_ttl,
                )
                self._miss(key, began)
                return self._fetch()
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _fetch_under(self, key: str, lease: Lease, rejected_print: str | None,
                     began: float) -> Token:
        try:
            try:
                token = self._read(key, rejected_print)  # stored between our read and lease
            except CacheError as exc:
                logger.warning("token cache %r failed (%s); fetching the token directly",
                               self.cache, exc)
            else:
                if token is not None:
                    return self._hit(key, token, began)
                self._miss(key, began)
            token = self._fetch()
            self._write(key, token)
            return token
        finally:
            try:
                self._store(lease.release, "release", key)
            except CacheError as exc:
                logger.warning("token cache %r failed to release a lease: %s", self.cache, exc)

    def _hit(self, key: str, token: Token, began: float) -> Token:
        """``token``, found in the cache: told to the observers."""
        if self._observers:
            from ._observers import fetched
            from .events import CacheHit

            duration = time.monotonic() - began
            self._observers.emit(CacheHit(key=key, duration=duration))
            fetched(self._observers, token, source="cache", duration=duration, attempts=0,
                    now=self._clock())
        return token

    def _miss(self, key: str, began: float) -> None:
        """No usable token in the cache: this process fetches one."""
        if self._observers:
            from .events import CacheMiss

            self._observers.emit(CacheMiss(key=key, duration=time.monotonic() - began))

    def _read(self, key: str, rejected_print: str | None) -> Token | None:
        """The fresh token stored for ``key``, or ``None`` (a miss, logged if unreadable)."""
        entry = self._store(lambda: self.cache.get(key), "get", key)
        if entry is None or entry.fingerprint == rejected_print:
            return None
        try:
            record = load_json(entry.payload)
            if record is NOT_JSON:
                raise UnusableToken("not JSON, or nested too deeply")
            token = token_from_record(record, self._clock(), time.time(), dpop=self._dpop)
            matches = fingerprint(token.access_token) == entry.fingerprint
        except Exception as exc:
            # UnusableToken names the rule broken, never the value; other texts might quote it
            reason = str(exc) if isinstance(exc, UnusableToken) else type(exc).__name__
            logger.warning("unreadable entry for key %s in %r (%s): treated as a miss",
                           key, self.cache, reason)
            return None
        if not matches:
            logger.warning("entry for key %s in %r does not match its fingerprint: treated "
                           "as a miss", key, self.cache)
            return None
        return token if self._clock() < token.refresh_at(self._leeway) else None

    def _write(self, key: str, token: Token) -> None:
        now = self._clock()
        remaining = token.expires_in(now)
        record = token_to_record(token, now, time.time())
        entry = CacheEntry(fingerprint(token.access_token), encode_record(record))
        try:
            self._store(lambda: self.cache.set(
                key, entry, math.inf if remaining is None else remaining), "set", key)
        except CacheError as exc:
            logger.warning("token cache %r failed to store the new token: %s", self.cache, exc)
