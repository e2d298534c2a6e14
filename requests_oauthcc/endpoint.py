"""Talks to the token endpoint: authenticates the client, sends the request with its own
Session, retries transient failures, and hands the answer to :mod:`.response`.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from .client_auth import Cert, ClientAuthMethod, ClientAuthParts
from .errors import (
    InvalidTokenResponseError,
    TokenEndpointConnectionError,
    TokenEndpointError,
)
from .redaction import (
    REDACTED,
    Redactor,
    SensitiveBytes,
    SensitiveText,
    server_text,
    without_frames,
)
from .response import interpret_token_response
from .retry import TokenRetry
from .token import Token

__all__ = ["MAX_BODY_BYTES", "TokenEndpoint", "private_session"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
"""A token response larger than this (1 MiB, after decompression) is refused."""

_SENSITIVE_FIELDS = frozenset({"client_secret", "client_assertion"})
_FORM = "application/x-www-form-urlencoded"

Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class TokenEndpoint:
    """One client's view of one token endpoint: what to ask for, and how.

    ``form`` holds the grant parameters besides ``grant_type`` and client authentication
    (scope, audience, resource, extra parameters). ``requested_scope`` becomes the token's
    scope when the server does not name one. ``clock`` stamps ``issued_at``/``expires_at``.
    """

    token_url: str
    client_id: str
    client_auth: ClientAuthMethod
    session: requests.Session = field(repr=False)
    form: Sequence[tuple[str, str]] = ()
    requested_scope: str | None = None
    timeout: Timeout = 10.0
    retry: TokenRetry = field(default_factory=TokenRetry)
    default_lifetime: float | None = None
    cert: Cert | None = field(default=None, repr=False)
    max_body_bytes: int = MAX_BODY_BYTES
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def fetch(self) -> Token:
        """Request a new token, retrying transient failures as ``retry`` allows."""
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                token = self._attempt()
            except TokenEndpointError as exc:
                delay = self._retry_delay(exc, attempt, started)
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
                "fetched token for client_id=%s from %s: scope=%s lifetime=%s "
                "in %.3fs (%d attempt%s)",
                self.client_id, self.token_url, token.scope,
                "unknown" if token.lifetime is None else f"{token.lifetime:.0f}s",
                time.monotonic() - started, attempt, "" if attempt == 1 else "s",
            )
            return token

    def _retry_delay(self, exc: TokenEndpointError, attempt: int, started: float) -> float | None:
        transient = (
            isinstance(exc, TokenEndpointConnectionError)
            and not isinstance(exc.__cause__, requests.exceptions.SSLError)  # won't heal
        ) or exc.status_code in self.retry.statuses
        if not transient:
            return None
        response = exc.response
        retry_after = None if response is None else response.headers.get("Retry-After")
        delay = self.retry.delay(attempt, retry_after)
        if delay is None or time.monotonic() - started + delay > self.retry.deadline:
            return None
        return delay

    def _attempt(self) -> Token:
        # No local of this frame shows a credential: the body and the headers are
        # SensitiveText, the parts and the redactor have no revealing repr.
        parts = self.client_auth.authenticate(self.client_id, self.token_url)
        body = self._body(parts)
        redact = Redactor(parts.secrets)
        issued_at = self.clock()
        try:
            response = self.session.post(
                self.token_url, data=body,
                headers={"Accept": "application/json", "Content-Type": _FORM},
                auth=_HeaderAuth(parts.headers), timeout=self.timeout,
                allow_redirects=False, stream=True,
                # Passed explicitly: requests lets REQUESTS_CA_BUNDLE override a Session's
                # own verify setting otherwise (psf/requests#3829).
                verify=self.session.verify,
                cert=self.cert,
            )
        except requests.RequestException as exc:
            if isinstance(exc.request, requests.PreparedRequest):
                exc.request = self._scrubbed(exc.request, parts)
            raise TokenEndpointConnectionError(
                f"could not reach the token endpoint {self.token_url}: "
                f"{type(exc).__name__}: {server_text(str(exc), redact)}",
                token_url=self.token_url,
            ) from without_frames(exc)
        with response:
            response.request = self._scrubbed(response.request, parts)
            content = SensitiveBytes(read_capped(response, self.max_body_bytes, self.token_url))
        try:
            return interpret_token_response(
                response, content, redact=redact, issued_at=issued_at,
                requested_scope=self.requested_scope, default_lifetime=self.default_lifetime,
                token_url=self.token_url,
            )
        except TokenEndpointError as exc:
            # The parser's frames hold the decoded answer (a live token, an echoed secret)
            # as locals; the error says all that is safe to say, so they are dropped.
            raise without_frames(exc) from None

    def _body(self, parts: ClientAuthParts) -> SensitiveText:
        """The form-encoded token request, as text whose repr shows no credential."""
        form = [("grant_type", "client_credentials"), *self.form, *parts.form]
        return SensitiveText(urlencode(form))

    def _scrubbed(
        self, request: requests.PreparedRequest, parts: ClientAuthParts
    ) -> requests.PreparedRequest:
        """A copy of a token request without its credentials, safe to hand out with errors."""
        copy = request.copy()
        copy.headers.pop("Authorization", None)
        form = [("grant_type", "client_credentials"), *self.form, *parts.form]
        copy.body = urlencode(
            [(k, REDACTED if k in _SENSITIVE_FIELDS else v) for k, v in form]
        )
        return copy


def read_capped(response: requests.Response, limit: int, url: str) -> bytes:
    """The body of a streamed response, refusing more than ``limit`` bytes."""
    declared = response.headers.get("Content-Length", "")
    too_big = declared.isdigit() and int(declared) > limit
    chunks: list[bytes] = []
    size = 0
    try:
        if not too_big:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    too_big = True
                    break
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise TokenEndpointConnectionError(
            f"{url} broke off its answer: {type(exc).__name__}",
            token_url=url, status_code=response.status_code,
        ) from exc
    if too_big:
        raise InvalidTokenResponseError(
            f"{url} answered {response.status_code} with a body over {limit} bytes; refused",
            token_url=url, status_code=response.status_code,
        )
    body = b"".join(chunks)
    # Keep the bytes on the response handed out with errors, so .text and .json() work.
    response._content = body
    return body


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


class _HeaderAuth(requests.auth.AuthBase):
    """Sets the client authentication headers; being an auth, it also keeps ~/.netrc out."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update(self._headers)
        return r


def _reason(exc: TokenEndpointError) -> str:
    return f"status {exc.status_code}" if exc.status_code else type(exc.__cause__).__name__
