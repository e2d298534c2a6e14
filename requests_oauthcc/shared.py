"""One token for every process using a shared cache: lease, fetch, share, or wait and read.

Imported only when ``cache=`` is given.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

from .cache import CacheEntry, CacheError, Lease, TokenCache, encode_record, fingerprint
from .token import Token, token_from_record, token_to_record

__all__ = ["SharedTokenSource"]

logger = logging.getLogger(__name__)


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
