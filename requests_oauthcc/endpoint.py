"""Talks to the token endpoint: authenticates the client, sends the request through
:func:`~requests_oauthcc.transport.exchange`, retries transient failures within the retry
policy's deadline, and hands the answer to :mod:`.response`.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

import requests

from ._frozen import Frozen
from ._observers import Observers, TokenRequestTrace, fetched
from .client_auth import ClientAuthMethod, ClientAuthParts
from .errors import (
    InvalidTokenResponseError,
    TokenEndpointConnectionError,
    TokenEndpointError,
    UseDPoPNonceError,
)
from .redaction import REDACTED, Redactor, SensitiveText, server_text, without_frames
from .retry import TokenRetry
from .token import Token

if TYPE_CHECKING:
    from ._proofs import Proofs
    from .certificates import Cert, CertWatch
    from .transport import Timeout

__all__ = ["TokenEndpoint", "private_session"]

logger = logging.getLogger(__name__)

_SENSITIVE_FIELDS = frozenset({"client_secret", "client_assertion"})
_FORM = "application/x-www-form-urlencoded"


class TokenEndpoint(Frozen):
    """One client's view of one token endpoint: what to ask for, and how.

    ``form`` holds the grant parameters besides ``grant_type`` and client authentication
    (scope, audience, resource, extra parameters). ``requested_scope`` becomes the token's
    scope when the server does not name one. ``timeout`` (seconds, or ``(connect, read)``)
    bounds each token request whole; ``retry.deadline`` bounds the whole fetch.
    ``allow_http``: send over plain http even off this host (``insecure_allow_http``).
    ``clock`` stamps ``issued_at``/``expires_at``. ``dpop``: the auth's DPoP proofs: each
    token request then carries a proof and asks for a DPoP-bound token (RFC 9449 §5).
    ``cert_watch``: the client certificate files (``cert``, or the Session's), looked at
    each token request: after they change, the connections the Session keeps for the
    token URL (opened with the old certificate) are closed, not reused.
    """

    __slots__ = ("_noticed", "_recent", "allow_http", "cert", "cert_watch", "client_auth",
                 "client_id", "clock", "default_lifetime", "dpop", "form", "max_body_bytes",
                 "observers", "requested_scope", "retry", "session", "timeout", "token_url")
    _fields = ("token_url", "client_id", "client_auth", "session", "form", "requested_scope",
               "timeout", "retry", "default_lifetime", "cert", "cert_watch", "max_body_bytes",
               "allow_http", "clock", "dpop", "observers")
    _shown = ("token_url", "client_id", "client_auth", "form", "requested_scope", "timeout",
              "retry", "default_lifetime", "max_body_bytes", "allow_http")

    token_url: Final[str]
    client_id: Final[str]
    client_auth: Final[ClientAuthMethod]
    session: Final[requests.Session]
    form: Final[Sequence[tuple[str, str]]]
    requested_scope: Final[str | None]
    timeout: Final[Timeout]
    retry: Final[TokenRetry]
    default_lifetime: Final[float | None]
    cert: Final[Cert | None]
    cert_watch: Final[CertWatch | None]
    max_body_bytes: Final[int | None]
    """The most of a token response read (bytes); ``None``: the transport's
    ``MAX_BODY_BYTES`` (1 MiB)."""
    allow_http: Final[bool]
    clock: Final[Callable[[], float]]
    dpop: Final[Proofs | None]
    observers: Final[Observers | None]
    _recent: Final[deque[str]]
    """The last tokens issued and DPoP proofs sent, redacted too from what the server says
    next."""
    _noticed: Final[set[str]]
    """What was already logged as a WARNING about this endpoint's answers: once is enough."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_auth: ClientAuthMethod,
        session: requests.Session,
        form: Sequence[tuple[str, str]] = (),
        requested_scope: str | None = None,
        timeout: Timeout = 10.0,
        retry: TokenRetry | None = None,
        default_lifetime: float | None = None,
        cert: Cert | None = None,
        cert_watch: CertWatch | None = None,
        max_body_bytes: int | None = None,
        allow_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
        dpop: Proofs | None = None,
        observers: Observers | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_auth = client_auth
        self.session = session
        self.form = form
        self.requested_scope = requested_scope
        self.timeout = timeout
        self.retry = TokenRetry() if retry is None else retry
        self.default_lifetime = default_lifetime
        self.cert = cert
        self.cert_watch = cert_watch
        self.max_body_bytes = max_body_bytes
        self.allow_http = allow_http
        self.clock = clock
        self.dpop = dpop
        self.observers = observers
        self._recent = deque(maxlen=6)
        self._noticed = set()

    def fetch(self) -> Token:
        """Request a new token, retrying transient failures as ``retry`` allows.

        The whole fetch, attempts in progress and waits between them included, ends within
        ``retry.deadline`` seconds: the last attempt gets only the time left.
        Raises :class:`~requests_oauthcc.errors.TokenEndpointError` and its subclasses, or
        :class:`~requests_oauthcc.errors.InsecureTransportError`.
        """
        telemetry = Observers.telemetry
        if telemetry is None:
            return self.fetch_traced(None)
        with telemetry.token_request(self.token_url, self.client_id) as trace:
            return self.fetch_traced(trace)

    def fetch_traced(self, trace: TokenRequestTrace | None, began: float | None = None
                     ) -> Token:
        """:meth:`fetch`, telling ``trace`` (if any) the answers it gets. ``began``: when
        the token request began (a :func:`time.monotonic` reading), if before this call:
        the discovery of this endpoint is part of the first one, and of its duration."""
        started = time.monotonic()
        if began is None:
            began = started
        deadline = started + self.retry.deadline
        attempt = 1
        while True:
            try:
                token = self._attempt(deadline, trace)
            except TokenEndpointError as exc:
                delay = self._retry_delay(exc, attempt, deadline)
                if isinstance(delay, str):
                    logger.warning("token request to %s failed (attempt %d: %s); not retried: %s",
                                   self.token_url, attempt, _reason(exc), delay)
                    raise
                if delay is None:
                    raise
                logger.warning(
                    "token request to %s failed (attempt %d: %s); retrying in %.2fs",
                    self.token_url, attempt, _reason(exc), delay,
                )
                time.sleep(delay)
                attempt += 1
                continue
            logger.info(
                "fetched token for client_id=%s from %s: token_type=%s scope=%s "
                "lifetime=%s in %.3fs (%d attempt%s)",
                self.client_id or "(named by the assertion)", self.token_url,
                token.token_type, None if token.scope is None
                else server_text(token.scope, Redactor([token.access_token])),
                "unknown" if token.lifetime is None else f"{token.lifetime:.0f}s",
                time.monotonic() - began, attempt, "" if attempt == 1 else "s",
            )
            if self.observers:
                fetched(self.observers, token, source="endpoint",
                        duration=time.monotonic() - began, attempts=attempt, now=self.clock())
            return token

    def _retry_delay(
        self, exc: TokenEndpointError, attempt: int, deadline: float
    ) -> float | str | None:
        """Seconds to wait before the next attempt; ``None`` when the failure is not
        transient or the retries are used up; why not, when the server's ``Retry-After``
        or the deadline forbids a retry the count still allows (logged: it surprises)."""
        transient = (
            isinstance(exc, TokenEndpointConnectionError)
            and not isinstance(exc.__cause__, requests.exceptions.SSLError)  # won't heal
        ) or exc.status_code in self.retry.statuses
        if not transient or self.retry.total == 0:
            return None
        response = exc.response
        retry_after = None if response is None else response.headers.get("Retry-After")
        delay = self.retry.delay(attempt, retry_after)
        if delay is None:
            if attempt > self.retry.total:
                return None  # all retries used: the error raised says the rest
            return (f"the server asks to wait (Retry-After) longer than retry_after_max="
                    f"{self.retry.retry_after_max:g}s")
        if time.monotonic() + delay >= deadline:
            return f"the next attempt would end after the deadline ({self.retry.deadline:g}s)"
        return delay

    def _attempt(self, deadline: float, trace: TokenRequestTrace | None) -> Token:
        """One token request; with DPoP, sent once more at once when the server asks for
        a nonce it has just given (RFC 9449 §8): that is not a failure to retry later."""
        if self.dpop is None:
            return self._send(deadline, trace)
        nonce = self.dpop.nonce(self.token_url, token_endpoint=True)
        try:
            return self._send(deadline, trace)
        except UseDPoPNonceError:
            if self.dpop.nonce(self.token_url, token_endpoint=True) in (None, nonce):
                raise  # no new nonce came: sending again could not help
        logger.debug("token endpoint %s asked for a DPoP nonce; sending again with it",
                     self.token_url)
        if self.observers:
            from ._urls import target_uri
            from .events import DPoPNonceRetried

            self.observers.emit(DPoPNonceRetried(server="token_endpoint",
                                                 url=target_uri(self.token_url)))
        return self._send(deadline, trace)

    def _send(self, deadline: float, trace: TokenRequestTrace | None) -> Token:
        # No local of this frame shows a credential: the body and the headers are
        # SensitiveText, the parts and the redactor have no revealing repr.
        from .response import interpret_token_response  # token requests only: imported
        from .transport import MAX_BODY_BYTES, exchange  # here, `import` stays light

        max_body_bytes = MAX_BODY_BYTES if self.max_body_bytes is None else self.max_body_bytes
        parts = self.client_auth.authenticate(self.client_id, self.token_url)
        if self.cert_watch is not None and self.cert_watch.outdated():
            self.session.get_adapter(self.token_url).close()  # its pools: new ones follow
        headers = {"Accept": "application/json", "Content-Type": _FORM, **parts.headers}
        if self.dpop is not None:
            headers["DPoP"] = self.dpop.for_token_request(self.token_url)
            self._recent.append(headers["DPoP"])
        redact = Redactor([*parts.secrets, *self._recent])
        issued_at = self.clock()
        response, body = exchange(
            self.session, "POST", self.token_url, headers=headers,
            data=self._body(parts), timeout=self.timeout, deadline=deadline, cert=self.cert,
            max_body_bytes=max_body_bytes, allow_http=self.allow_http,
            scrub=partial(self._scrubbed, parts=parts), redact=redact,
            fail=self._unreachable,
        )
        if trace is not None:
            trace.responded(response.status_code)
        if self.dpop is not None:
            self.dpop.learn(response, token_endpoint=True)
        if body is None:
            raise InvalidTokenResponseError(
                f"{self.token_url} answered {response.status_code} with a body over "
                f"{max_body_bytes} bytes; refused",
                token_url=self.token_url, status_code=response.status_code,
            )
        try:
            token = interpret_token_response(
                response, body, redact=redact, issued_at=issued_at,
                requested_scope=self.requested_scope, default_lifetime=self.default_lifetime,
                token_url=self.token_url, notice=self._notice,
                invalid_client_hint=parts.invalid_client_hint, dpop=self.dpop is not None,
            )
        except TokenEndpointError as exc:
            # The parser's frames hold the decoded answer (a live token, an echoed secret)
            # as locals; the error says all that is safe to say, so they are dropped.
            raise without_frames(exc) from None
        self._recent.append(token.access_token)
        return token

    def _notice(self, message: str) -> None:
        """Log ``message`` as a WARNING the first time this endpoint's answers call for it."""
        if message not in self._noticed:
            self._noticed.add(message)
            logger.warning("%s", message)

    def _unreachable(
        self, message: str, response: requests.Response | None
    ) -> TokenEndpointConnectionError:
        return TokenEndpointConnectionError(
            f"token request failed: {message}", token_url=self.token_url,
            status_code=None if response is None else response.status_code,
        )

    def _form(self, parts: ClientAuthParts) -> list[tuple[str, str]]:
        """The token request's fields (RFC 6749 §4.4.2), client authentication included."""
        return [("grant_type", "client_credentials"), *self.form, *parts.form]

    def _body(self, parts: ClientAuthParts) -> SensitiveText:
        """The form-encoded token request, as text whose repr shows no credential."""
        return SensitiveText(urlencode(self._form(parts)))

    def _scrubbed(
        self, request: requests.PreparedRequest, parts: ClientAuthParts
    ) -> requests.PreparedRequest:
        """A copy of a token request without its credentials, safe to hand out with errors."""
        from .transport import without_credentials

        copy = without_credentials(request)
        copy.body = urlencode(
            [(k, REDACTED if k in _SENSITIVE_FIELDS else v) for k, v in self._form(parts)]
        )
        return copy


_PRIVATE_SESSIONS: weakref.WeakSet[requests.Session] = weakref.WeakSet()


def private_session() -> requests.Session:
    """A Session for token requests only; in a forked child it gets fresh connections."""
    session = requests.Session()
    _PRIVATE_SESSIONS.add(session)
    return session


def _fresh_connections_after_fork() -> None:
    """A forked child must not share pooled sockets (and their TLS state) with its parent."""
    for session in list(_PRIVATE_SESSIONS):
        session.mount("https://", requests.adapters.HTTPAdapter())
        session.mount("http://", requests.adapters.HTTPAdapter())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_connections_after_fork)


def _reason(exc: TokenEndpointError) -> str:
    if isinstance(exc, TokenEndpointConnectionError):
        return "timeout" if exc.__cause__ is None else type(exc.__cause__).__name__
    return f"status {exc.status_code}"
