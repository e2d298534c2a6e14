"""When to try a token request again: a small immutable policy, like urllib3's ``Retry``."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace

from .errors import ConfigurationError

__all__ = ["TokenRetry"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class TokenRetry:
    """Retry policy for transient token endpoint failures.

    A client credentials token request is safe to repeat, so connection errors, timeouts
    and the statuses in ``statuses`` are retried; RFC 6749 errors (400/401) never are.

    ``total``: retries after the first attempt (0 disables retrying).
    ``backoff_factor``: the n-th retry waits ``backoff_factor * 2**(n-1)`` seconds, at most
    ``backoff_max``, scaled by a random factor in [0.5, 1] (jitter) so that many clients
    that failed together do not come back together.
    ``retry_after_max``: a ``Retry-After`` (seconds or HTTP date) up to this long is
    honoured; a longer one ends the retries and the error is raised.
    ``deadline``: no retry starts when it would end more than this many seconds after
    the first attempt started.
    """

    total: int = 3
    backoff_factor: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    deadline: float = 60.0
    statuses: frozenset[int] = RETRY_STATUSES

    @classmethod
    def from_value(cls, retries: int | TokenRetry | None) -> TokenRetry:
        """A policy from ``retries=``: a count, a policy, or ``None``/0 for no retries."""
        if isinstance(retries, TokenRetry):
            return retries
        if retries is None:
            return cls(total=0)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(
                f"retries must be a non-negative int or a TokenRetry; got {retries!r}"
            )
        return replace(cls(), total=retries)

    def delay(self, retry_number: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before retry ``retry_number`` (1-based), or ``None`` to give up."""
        if retry_number > self.total:
            return None
        backoff: float = min(self.backoff_max, self.backoff_factor * 2.0 ** (retry_number - 1))
        backoff *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
        if retry_after is None:
            return backoff
        asked = parse_retry_after(retry_after)
        if asked is None:
            return backoff
        if asked > self.retry_after_max:
            return None
        return max(backoff, asked)


def parse_retry_after(value: str) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date)."""
    import email.utils

    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
