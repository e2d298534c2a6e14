"""What an auth object tells its ``on_event`` callable: one immutable value per thing that
happens.

::

    def on_event(event: requests_oauthcc.events.Event) -> None:
        if isinstance(event, TokenRequestFailed):
            alert(f"no new token: {event.error} (still using the old one: "
                  f"{event.using_held_token})")

    session.auth = ClientCredentialsAuth(..., on_event=on_event)

=============================  =========================================================
:class:`TokenFetched`          a token arrived, from the token endpoint or a shared cache
:class:`TokenRequestFailed`    a token was needed and none came
:class:`RequestRetried`        an API request was sent again with a new token
:class:`RequestNotRetried`     a 401 (or a ``refresh_on`` status) was returned as it came
:class:`DPoPNonceRetried`      a request was sent again with a server's DPoP nonce
:class:`CacheHit`              the shared cache gave the token
:class:`CacheMiss`             the shared cache had no usable token: one was fetched
:class:`CacheFailed`           the shared cache failed (the token was fetched directly)
=============================  =========================================================

Events carry no secret, no client assertion, no token and no DPoP proof: a token is named
by :func:`short_fingerprint`, a URL is shown without its query or user info, an error by a
registered OAuth error code or an exception type (never the server's text). Durations are
seconds, from :func:`time.monotonic`.

The callable is called in the thread where the event happened (a request's thread, or the
thread refreshing ahead of expiry) and never while a lock of the auth is held or a token
request is in progress: it may use the same auth. Its exceptions are logged (logger
``requests_oauthcc.events``) and do not reach the request.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ._frozen import Frozen

__all__ = [
    "FINGERPRINT_DIGITS",
    "NOT_RETRIED_REASONS",
    "CacheFailed",
    "CacheHit",
    "CacheMiss",
    "DPoPNonceRetried",
    "Event",
    "RequestNotRetried",
    "RequestRetried",
    "TokenFetched",
    "TokenRequestFailed",
    "short_fingerprint",
]


FINGERPRINT_DIGITS: Final = 12
"""Hex digits of a token's SHA-256 that name it in events and ``requests-oauthcc inspect``."""


def short_fingerprint(access_token: str) -> str:
    """The first :data:`FINGERPRINT_DIGITS` hex digits of the SHA-256 of ``access_token``:
    names a token (in events, in ``requests-oauthcc inspect``, as the start of a shared
    cache's fingerprint) without revealing it or allowing its use."""
    return hashlib.sha256(access_token.encode("utf-8")).hexdigest()[:FINGERPRINT_DIGITS]


class Event(Frozen):
    """Base class of every event. ``repr`` shows every field; :meth:`as_dict` gives them."""

    __slots__ = ()

    def as_dict(self) -> dict[str, object]:
        """``{"event": class name, field: value, ...}``, e.g. for a JSON log line."""
        return {"event": type(self).__name__,
                **{name: getattr(self, name) for name in self._fields}}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._shown = cls._fields


class TokenFetched(Event):
    """A token arrived and is now used.

    ``source``: ``"endpoint"`` (a token request) or ``"cache"`` (another process or auth
    object fetched it into the shared cache). ``expires_in``: seconds it has left, or
    ``None`` when no lifetime is known. ``duration``: seconds from the start of the token
    request (for the first of an auth built ``from_issuer``, the discovery of the token
    endpoint included, as in its span), or of the cache lookup, to the token.
    ``attempts``: tries of the token request (more than 1 after retries of transient
    failures; 0 from the cache): a resend with the DPoP nonce the server asked for is part
    of its try, told by :class:`DPoPNonceRetried` (so HTTP requests sent = ``attempts`` +
    those events). ``token_type``: as the server spelled it. ``token``: its
    :func:`short_fingerprint`.
    """

    __slots__ = _fields = ("source", "expires_in", "duration", "attempts", "token_type", "token")

    source: Final[str]
    expires_in: Final[float | None]
    duration: Final[float]
    attempts: Final[int]
    token_type: Final[str]
    token: Final[str]

    def __init__(self, *, source: str, expires_in: float | None, duration: float,
                 attempts: int, token_type: str, token: str) -> None:
        self.source = source
        self.expires_in = expires_in
        self.duration = duration
        self.attempts = attempts
        self.token_type = token_type
        self.token = token


class TokenRequestFailed(Event):
    """A token was needed (first use, expiry, refresh ahead, a rejection, ``fetch_token()``)
    and none came.

    ``error``: the OAuth error code for a registered one (RFC 6749 §5.2, RFC 8707,
    RFC 9449: ``invalid_client``, ``use_dpop_nonce``, ...), else the exception's type name
    (``TokenEndpointConnectionError``, ``TokenError`` for an unregistered code,
    ``CredentialError``, ...). ``status_code``: the token endpoint's last HTTP status, or
    ``None`` (no answer). ``duration``: seconds spent, retries included.
    ``using_held_token``: the token held is still valid and stays in use (a refresh failed
    before expiry, or ``fetch_token()`` failed: it raises the error all the same);
    otherwise the error reaches the callers.
    """

    __slots__ = _fields = ("error", "status_code", "duration", "using_held_token")

    error: Final[str]
    status_code: Final[int | None]
    duration: Final[float]
    using_held_token: Final[bool]

    def __init__(self, *, error: str, status_code: int | None, duration: float,
                 using_held_token: bool) -> None:
        self.error = error
        self.status_code = status_code
        self.duration = duration
        self.using_held_token = using_held_token


class _Refusal(Event):
    """The fields of an API request's refusal, retried or not."""

    __slots__ = _fields = ("status_code", "reason", "url", "token")

    status_code: Final[int]
    reason: Final[str]
    url: Final[str]
    token: Final[str]

    def __init__(self, *, status_code: int, reason: str, url: str, token: str) -> None:
        self.status_code = status_code
        self.reason = reason
        self.url = url
        self.token = token


class RequestRetried(_Refusal):
    """An API request refused with ``status_code`` (401, or a ``refresh_on`` status) was
    sent again, once, with a new token (RFC 6750 §3.1).

    ``reason``: ``"invalid_token"`` (a ``WWW-Authenticate`` challenge said so),
    ``"no_error_code"`` (no challenge named an error) or ``"other_error_code"`` (an error
    code that neither asks for a new token nor rules one out). ``url``: the request's URL without
    query or user info. ``token``: the :func:`short_fingerprint` of the refused token.
    """

    __slots__ = ()


NOT_RETRIED_REASONS: Final = (
    "insufficient_scope",  # the challenge: the token is good, its scope is not
    "invalid_request",  # the challenge: the request, not the token, is at fault
    "invalid_dpop_proof",  # the proof was refused (RFC 9449 §7.1): a new token cannot help
    "use_dpop_nonce",  # the server asked for a nonce again, or gave none to use
    "already_retried",  # the answer to the one retry (a new token refused too)
    "token_too_recent",  # a refresh_on status other than 401 to a token under 1 s old
    "rejections_paused",  # new tokens were refused a moment ago: token requests pause
    "same_token",  # the token endpoint gave the refused token again
    "cannot_resend",  # the body cannot be sent again (a stream): a new token for next time
    "token_not_sent",  # the request reached the server without our token (a redirect)
)
"""The reasons of :class:`RequestNotRetried`, each explained."""


class RequestNotRetried(_Refusal):
    """A 401 (or a ``refresh_on`` status) to a request was returned as it came.

    ``reason``: one of :data:`NOT_RETRIED_REASONS`. ``url``: the request's URL without
    query or user info. ``token``: the :func:`short_fingerprint` of the token the request
    carried.
    """

    __slots__ = ()


class DPoPNonceRetried(Event):
    """A request was sent again, at once, with the DPoP nonce the server had just given
    in its answer asking for one (``use_dpop_nonce``, RFC 9449 §8, §9).

    ``server``: ``"token_endpoint"`` or ``"resource"``. ``url``: without query or user
    info.
    """

    __slots__ = _fields = ("server", "url")

    server: Final[str]
    url: Final[str]

    def __init__(self, *, server: str, url: str) -> None:
        self.server = server
        self.url = url


class _CacheLookup(Event):
    """The fields of a shared-cache lookup's outcome."""

    __slots__ = _fields = ("key", "duration")

    key: Final[str]
    duration: Final[float]

    def __init__(self, *, key: str, duration: float) -> None:
        self.key = key
        self.duration = duration


class CacheHit(_CacheLookup):
    """The shared cache gave a fresh token (stored by another process or auth object).

    ``key``: the cache key (a digest, see :func:`~requests_oauthcc.cache_key.cache_key`).
    ``duration``: seconds the lookup took, waiting for another process's token request
    included.
    """

    __slots__ = ()


class CacheMiss(_CacheLookup):
    """The shared cache had no usable token: this process fetched one (and stores it).

    ``key``: the cache key. ``duration``: seconds the lookup took (it may have waited for
    another process's token request that did not come).
    """

    __slots__ = ()


class CacheFailed(Event):
    """An operation of the shared cache failed (the token is fetched directly; a failed
    store or lease release costs nothing more).

    ``operation``: ``"get"`` or ``"lease"`` (a lookup: no :class:`CacheHit` or
    :class:`CacheMiss` follows), ``"set"``, ``"release"`` or ``"delete"``. ``key``: the
    cache key. ``error``: what failed, by exception type (never the cache's text, which
    could quote a stored entry).
    """

    __slots__ = _fields = ("operation", "key", "error")

    operation: Final[str]
    key: Final[str]
    error: Final[str]

    def __init__(self, *, operation: str, key: str, error: str) -> None:
        self.operation = operation
        self.key = key
        self.error = error
