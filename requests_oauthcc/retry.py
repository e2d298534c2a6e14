"""When to try a token request again: a small immutable policy, like urllib3's ``Retry``."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable
from typing import Final

from ._frozen import Frozen
from .errors import ConfigurationError

__all__ = ["TokenRetry", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_MAX_DOUBLINGS = 64
"""The backoff stops doubling here (it is capped by ``backoff_max`` long before)."""


class TokenRetry(Frozen):
    """Retry policy for transient token endpoint failures.

    A client credentials token request is safe to repeat, so connection errors, timeouts
    and the statuses in ``statuses`` are retried; RFC 6749 errors (400/401) never are.

    ``total``: retries after the first attempt (an int >= 0; 0 disables retrying).
    ``backoff_factor``: the n-th retry waits ``backoff_factor * 2**(n-1)`` seconds, at most
    ``backoff_max``, scaled by a random factor in [0.5, 1] (jitter) so that many clients
    that failed together do not come back together.
    ``retry_after_max``: a ``Retry-After`` (seconds or HTTP date) up to this long is
    honoured; a longer one ends the retries and the error is raised.
    ``deadline``: seconds the whole fetch may take, attempts in progress and waits between
    them included: the attempt running at the deadline is cut off (the last attempt gets
    only the time left), and no retry starts that would begin after it.
    ``statuses``: HTTP statuses that are retried (ints in 100..599).

    Seconds are finite non-negative numbers (``deadline`` positive); anything else raises
    :class:`~requests_oauthcc.errors.ConfigurationError`.
    """

    __slots__ = _fields = ("total", "backoff_factor", "backoff_max", "retry_after_max",
                           "deadline", "statuses")
    _shown = _fields

    total: Final[int]
    backoff_factor: Final[float]
    backoff_max: Final[float]
    retry_after_max: Final[float]
    deadline: Final[float]
    statuses: Final[frozenset[int]]

    def __init__(  # noqa: PLR0917 - positional, as when it was a dataclass
        self,
        total: int = 3,
        backoff_factor: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 30.0,
        deadline: float = 60.0,
        statuses: frozenset[int] = RETRY_STATUSES,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ConfigurationError(
                f"TokenRetry.total must be an int >= 0 (retries after the first attempt); "
                f"got {total!r}"
            )
        seconds = {"backoff_factor": backoff_factor, "backoff_max": backoff_max,
                   "retry_after_max": retry_after_max, "deadline": deadline}
        for name, value in seconds.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (name == "deadline" and value == 0)
            ):
                kind = "positive" if name == "deadline" else "non-negative"
                raise ConfigurationError(
                    f"TokenRetry.{name} must be a finite {kind} number of seconds; "
                    f"got {value!r}"
                )
        self.total = total
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.deadline = deadline
        self.statuses = _checked_statuses(statuses)

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
        return cls(total=retries)

    def delay(self, retry_number: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before retry ``retry_number`` (1-based), or ``None`` to give up.

        ``retry_after``: the failed answer's ``Retry-After`` header, if any; an unusable
        one is ignored.
        """
        if retry_number > self.total:
            return None
        doublings = min(retry_number - 1, _MAX_DOUBLINGS)
        backoff: float = min(self.backoff_max, self.backoff_factor * 2.0**doublings)
        backoff *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
        if retry_after is None:
            return backoff
        asked = parse_retry_after(retry_after)
        if asked is None:
            return backoff
        if asked > self.retry_after_max:
            return None
        return max(backoff, asked)


def parse_retry_after(value: object) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (RFC 9110 §10.2.3), or ``None``.

    Delta-seconds (ASCII digits; an absurdly long one is ``inf``) or an HTTP date (0 once
    past). Anything else is unusable and gives ``None``: this never raises, whatever the
    server sent.
    """
    import email.utils

    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)  # "9" * 400 is inf, not an OverflowError
    try:
        when = email.utils.parsedate_to_datetime(text)
        seconds = when.timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _checked_statuses(statuses: object) -> frozenset[int]:
    problem = ConfigurationError(
        f"TokenRetry.statuses must be a set of HTTP status ints; got {statuses!r}"
    )
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Iterable):
        raise problem
    try:
        checked = frozenset(statuses)
    except TypeError:
        raise problem from None
    for status in checked:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigurationError(
                f"TokenRetry.statuses must hold HTTP statuses (ints 100..599); got {status!r}"
            )
    return checked
