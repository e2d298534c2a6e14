"""Bounding the token requests of an API that rejects every token.

A 401 (or a ``refresh_on`` status) costs one new token and one retry. When the retry, made
with a token the server issued a moment ago, is rejected too, a new token is not what the
API wants: it is meant for another audience, lacks a scope, or the clocks disagree.
:class:`RejectionPause` then holds further token requests forced by rejections back, for
:data:`MIN_PAUSE` seconds, doubling up to :data:`MAX_PAUSE` while the rejections go on,
and says once (a WARNING) what the likely causes are. Requests meanwhile still go out
with the held token; their 401s are returned at once.
"""

from __future__ import annotations

import logging
import threading
import time

from .token import Token

__all__ = ["MAX_PAUSE", "MIN_PAUSE", "RejectionPause"]

logger = logging.getLogger(__name__)

MIN_PAUSE = 5.0
"""Seconds without a token request forced by a rejection, after a brand-new token was
rejected (the first time in a while)."""
MAX_PAUSE = 60.0
"""The pause doubles from :data:`MIN_PAUSE` up to this many seconds while brand-new tokens
keep being rejected."""


class RejectionPause:
    """Whether a token request forced by an API's rejection may be made now.

    :meth:`rejected_again` is called when a request retried with a brand-new token was
    rejected again; :meth:`remaining` says how many seconds (of ``clock``) token requests
    forced by rejections wait still (times are readings of the auth's clock, in seconds);
    :meth:`accepted` (a retry with a new token succeeded)
    ends the pause. A rejection within one pause's length after the previous pause ended
    continues the episode (the pause doubles); a later one starts again at
    :data:`MIN_PAUSE`, with a new WARNING. Rejections during a pause (other threads that
    retried with the same new token) belong to its round and change nothing.
    """

    __slots__ = ("_interval", "_lock", "_until")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._interval = 0.0  # 0: no episode going on

    def remaining(self, now: float) -> float:
        """Seconds before a rejection may force a token request again (0: it may now)."""
        return max(0.0, self._until - now) if self._interval else 0.0

    def accepted(self) -> None:
        """A retry with a new token was accepted: rejections force token requests again."""
        with self._lock:
            self._interval = 0.0
            self._until = 0.0

    def rejected_again(self, now: float, token: Token, where: str, status: int) -> float:
        """A request to ``where`` (a URL without its query) retried with the brand-new
        ``token`` was answered ``status`` again: pause token requests forced by
        rejections. Returns the pause, in seconds."""
        with self._lock:
            starts = not self._interval or now > self._until + self._interval
            if starts:
                self._interval = MIN_PAUSE
            elif now >= self._until:  # the pause had ended, and the next new token failed
                self._interval = min(self._interval * 2, MAX_PAUSE)
            else:  # another request of the same round (threads retried with that token)
                return self._until - now
            self._until = now + self._interval
            pause = self._interval
        if starts:
            logger.warning(
                "%d from %s to a request retried with a brand-new token: the API rejects "
                "the tokens this client gets, and a new one will not help. Likely causes: "
                "the token is meant for another audience (set audience= or resource= as "
                "the API expects), it lacks a scope the API needs (granted: %s), or the "
                "clocks of the API and the token server disagree%s. Token requests after "
                "a rejection are paused for %gs, then up to %gs while rejections go on; "
                "requests meanwhile go out with the held token and their %d is returned.",
                status, where, _granted(token),
                _claims_seen(token), pause, MAX_PAUSE, status,
            )
        else:
            logger.debug("%d from %s to a brand-new token again: token requests after a "
                         "rejection paused for %gs", status, where, pause)
        return pause


def _granted(token: Token) -> str:
    """The token's scope as the token server granted it (server text: cleaned, bounded,
    the token itself redacted)."""
    from .redaction import Redactor, server_text

    if token.scope is None:
        return "(not said)"
    return server_text(token.scope, Redactor([token.access_token]))


def _claims_seen(token: Token) -> str:
    """What the access token, if it is a JWT, says about audience and time (not verified:
    only to help find the cause), as text to add to the warning; ``""`` otherwise."""
    from ._peek import numeric_date, peek
    from .redaction import server_text

    try:
        claims = peek(token.access_token)[1]
        issued, not_before = numeric_date(claims, "iat"), numeric_date(claims, "nbf")
    except ValueError:  # opaque, or not a JWT we can read: nothing to add
        return ""
    seen = []
    if "aud" in claims:
        seen.append(f"aud {server_text(claims['aud'], limit=120)}")
    now = time.time()
    for name, value in (("iat", issued), ("nbf", not_before)):
        if value is not None and value > now:
            seen.append(f"{name} {value - now:.0f}s ahead of this host's clock")
    return f" (the token, a JWT, says: {'; '.join(seen)})" if seen else ""
