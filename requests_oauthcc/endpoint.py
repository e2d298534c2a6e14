"""Talks to the token endpoint: builds the form, authenticates the client, sends the
request with its own Session, and turns the answer into a :class:`Token` or a typed error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from .client_auth import Cert, ClientAuthMethod
from .errors import (
    ConfigurationError,
    InvalidTokenResponseError,
    TokenEndpointConnectionError,
    TokenEndpointError,
    TokenError,
    token_error_class,
)
from .retry import TokenRetry
from .token import Token

__all__ = [
    "MAX_BODY_BYTES",
    "TokenEndpoint",
    "grant_parameters",
    "parse_token_response",
    "private_session",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
"""A token response larger than this (1 MiB, after decompression) is refused."""

_SENSITIVE_FIELDS = frozenset({"client_secret", "client_assertion"})
_RESERVED_FIELDS = frozenset({
    "grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type",
    "scope", "audience", "resource",
})
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_EXCERPT_CHARS = 200
_NOT_JSON = object()
_STATUS_HINTS = {
    401: " (check client_id, client_secret and auth_method)",
    403: " (check that this client may use the client credentials grant)",
    404: " (check token_url)",
}

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
        parts = self.client_auth.authenticate(self.client_id, self.token_url)
        form = [("grant_type", "client_credentials"), *self.form, *parts.form]
        redact = _Redactor(parts.secrets)
        issued_at = self.clock()
        try:
            response = self.session.post(
                self.token_url, data=form, headers={"Accept": "application/json"},
                auth=_HeaderAuth(parts.headers), timeout=self.timeout,
                allow_redirects=False, stream=True,
                # Passed explicitly: requests lets REQUESTS_CA_BUNDLE override a Session's
                # own verify setting otherwise (psf/requests#3829).
                verify=self.session.verify,
                cert=self.cert,
            )
        except requests.RequestException as exc:
            if isinstance(exc.request, requests.PreparedRequest):
                exc.request = _scrubbed(exc.request, form)
            raise TokenEndpointConnectionError(
                f"could not reach the token endpoint {self.token_url}: "
                f"{type(exc).__name__}: {redact(str(exc))}",
                token_url=self.token_url,
            ) from exc
        with response:
            response.request = _scrubbed(response.request, form)
            body = read_capped(response, self.max_body_bytes, self.token_url)
        return self._interpret(response, body, redact, issued_at)

    def _interpret(
        self, response: requests.Response, body: bytes, redact: _Redactor, issued_at: float
    ) -> Token:
        status = response.status_code
        where = f"the token endpoint {self.token_url} answered {status}"
        if 300 <= status < 400:
            raise TokenEndpointError(
                f"{where}, a redirect to {response.headers.get('Location', '(no Location)')!r}; "
                "token requests never follow redirects: set token_url to the final URL",
                token_url=self.token_url, status_code=status, response=response,
            )
        try:
            payload: object = json.loads(body)
        except ValueError:
            payload = _NOT_JSON
        if isinstance(payload, dict) and "error" in payload:
            raise _token_error(payload, where, redact, self.token_url, response)
        if not 200 <= status < 300:
            hint = _STATUS_HINTS.get(status, "")
            raise TokenEndpointError(
                f"{where} without an OAuth error{hint}: {_excerpt(body, redact)}",
                token_url=self.token_url, status_code=status, response=response,
            )
        if payload is _NOT_JSON:
            raise InvalidTokenResponseError(
                f"{where} with a body that is not JSON: {_excerpt(body, redact)}",
                token_url=self.token_url, status_code=status, response=response,
            )
        return parse_token_response(
            payload, issued_at=issued_at, requested_scope=self.requested_scope,
            default_lifetime=self.default_lifetime, token_url=self.token_url, response=response,
        )


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


def grant_parameters(
    *,
    scope: str | Iterable[str] | None = None,
    audience: str | None = None,
    resource: str | Iterable[str] | None = None,
    extra_params: Mapping[str, str | Iterable[str]] | None = None,
) -> tuple[tuple[str, str], ...]:
    """The token request's form fields besides ``grant_type`` and client authentication.

    ``scope`` (a string or strings) is sent space-joined; ``resource`` (RFC 8707) once per
    absolute URI; ``extra_params`` values may be a string or strings (one field each).
    """
    fields: list[tuple[str, str]] = []
    joined = normalize_scope(scope)
    if joined is not None:
        fields.append(("scope", joined))
    if audience is not None:
        if not isinstance(audience, str) or not audience:
            raise ConfigurationError("audience must be a non-empty string")
        fields.append(("audience", audience))
    for uri in _strings("resource", resource):
        scheme, _, rest = uri.partition(":")
        if not scheme.isascii() or not scheme.isalpha() or not rest or "#" in uri:
            raise ConfigurationError(
                f"resource {uri!r} must be an absolute URI without a fragment (RFC 8707)"
            )
        fields.append(("resource", uri))
    for name, value in (extra_params or {}).items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError("extra_params keys must be non-empty strings")
        if name in _RESERVED_FIELDS:
            raise ConfigurationError(
                f"extra_params may not set {name!r}: it is set by ClientCredentialsAuth "
                "(use the keyword argument of that name, or auth_method=)"
            )
        fields.extend((name, item) for item in _strings(f"extra_params[{name!r}]", value))
    return tuple(fields)


def normalize_scope(scope: str | Iterable[str] | None) -> str | None:
    """A scope string with single spaces, from a string or an iterable of scope tokens."""
    if scope is None:
        return None
    tokens = scope.split() if isinstance(scope, str) else []
    if not isinstance(scope, str):
        for item in _strings("scope", scope):
            if not item or item != item.strip() or " " in item:
                raise ConfigurationError(f"scope token {item!r} must be non-empty, without spaces")
            tokens.append(item)
    if not tokens:
        raise ConfigurationError("scope is empty; pass None to request the default scope")
    return " ".join(tokens)


def _strings(name: str, value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{name} must be a string or an iterable of strings")
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise ConfigurationError(f"{name} must hold only strings")
    return items


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


def parse_token_response(
    payload: object,
    *,
    issued_at: float,
    requested_scope: str | None = None,
    default_lifetime: float | None = None,
    token_url: str = "(unknown)",
    response: requests.Response | None = None,
) -> Token:
    """A :class:`Token` from a decoded RFC 6749 §5.1 response, or a typed error.

    Lenient where real servers differ harmlessly: ``token_type`` in any case (and
    ``Bearer`` when missing), ``expires_in`` as a number or a numeric string, ``scope`` as
    a string or a list of strings. Strict where a mistake would hurt: no usable
    ``access_token``, a token type other than Bearer, a lifetime that is not a positive
    finite number.
    """
    status = None if response is None else response.status_code

    def malformed(what: str) -> InvalidTokenResponseError:
        return InvalidTokenResponseError(
            f"the token endpoint {token_url} answered with an unusable token response: {what}",
            token_url=token_url, status_code=status, response=response,
        )

    if not isinstance(payload, dict):
        raise malformed(f"expected a JSON object, got {_json_kind(payload)}")
    if "error" in payload:
        raise _token_error(payload, f"the token endpoint {token_url} answered", _Redactor(()),
                           token_url, response)
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise malformed(f"access_token is {_describe_missing(access_token)}")
    if not _HEADER_SAFE.fullmatch(access_token):
        raise malformed("access_token holds characters that cannot go in an HTTP header")
    token_type = payload.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = repr(token_type)[:40] if isinstance(token_type, str) else _json_kind(token_type)
        raise malformed(f"token_type {shown} is not supported; only Bearer tokens are")
    lifetime = _lifetime(payload.get("expires_in"), default_lifetime, malformed)
    return Token(
        access_token=access_token,
        token_type=token_type,
        scope=_scope(payload.get("scope", requested_scope), malformed),
        issued_at=issued_at,
        expires_at=None if lifetime is None else issued_at + lifetime,
        raw=dict(payload),
    )


def _lifetime(
    value: object, default: float | None, malformed: Callable[[str], Exception]
) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise malformed(f"expires_in must be a number of seconds, got {_json_kind(value)}")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise malformed(f"expires_in {value[:20]!r} is not a number of seconds")
        value = text
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise malformed(f"expires_in must be a positive finite number of seconds, got {seconds}")
    return seconds


def _scope(value: object, malformed: Callable[[str], Exception]) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(value)
    raise malformed(f"scope must be a string, got {_json_kind(value)}")


def _token_error(
    payload: Mapping[str, Any],
    where: str,
    redact: _Redactor,
    token_url: str,
    response: requests.Response | None,
) -> TokenError | InvalidTokenResponseError:
    status = None if response is None else response.status_code
    error = payload.get("error")
    if not isinstance(error, str) or not error:
        return InvalidTokenResponseError(
            f"{where} with an 'error' field that is not a string",
            token_url=token_url, status_code=status, response=response,
        )
    description = payload.get("error_description")
    description = redact(description) if isinstance(description, str) else None
    uri = payload.get("error_uri")
    uri = uri if isinstance(uri, str) else None
    error = redact(error)[:100]
    message = f"{where}: {error}"
    if description:
        message += f": {description[:_EXCERPT_CHARS]}"
    return token_error_class(error)(
        message, token_url=token_url, error=error, error_description=description,
        error_uri=uri, status_code=status, response=response,
    )


class _Redactor:
    """Replaces the secrets of one token request by ``[redacted]`` in server-supplied text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def _scrubbed(request: requests.PreparedRequest, form: Sequence[tuple[str, str]]
              ) -> requests.PreparedRequest:
    """A copy of a token request without its credentials, safe to hand out with errors."""
    copy = request.copy()
    copy.headers.pop("Authorization", None)
    copy.body = urlencode(
        [(k, "[redacted]" if k in _SENSITIVE_FIELDS else v) for k, v in form]
    )
    return copy


def _excerpt(body: bytes, redact: _Redactor) -> str:
    if not body.strip():
        return "(empty body)"
    text = " ".join(body.decode("utf-8", "replace").split())
    text = redact(text)
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "..."
    return repr(text)


def _json_kind(value: object) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _describe_missing(value: object) -> str:
    if value is None:
        return "missing"
    if value == "":
        return "empty"
    return f"not a string ({_json_kind(value)})"


def _reason(exc: TokenEndpointError) -> str:
    return f"status {exc.status_code}" if exc.status_code else type(exc.__cause__).__name__
