"""Reading the token endpoint's answer: a :class:`Token`, or a typed error that quotes no
credential.

A 2xx body is never quoted (it may hold a live token in a form the parser did not expect):
its shape is described instead. Text from an error answer goes through
:func:`~requests_oauthcc.redaction.server_text`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import requests

from .errors import InvalidTokenResponseError, TokenError, token_error_class
from .redaction import NO_SECRETS, Redactor, server_text
from .token import Token, UnusableToken, as_float, checked_fields, json_kind

__all__ = ["MAX_JSON_DEPTH", "interpret_token_response", "load_json", "parse_token_response"]

MAX_JSON_DEPTH = 32
"""JSON nested deeper than this (token response, metadata, cache entry) is refused."""

NOT_JSON = object()
# A string (its closing quote optional, so that an unclosed one is consumed in one pass:
# with it required, '"' followed by many '\\"' made every escaped quote start a new scan
# to the end, quadratic time), or a bracket.
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_SECONDS = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")
"""``expires_in`` as a string: digits, optionally with a fraction ("3600", "3599.5")."""
_STATUS_HINTS = {
    401: " (check client_id, client_secret and auth_method)",
    403: " (check that this client may use the client credentials grant)",
    404: " (check token_url)",
}


def load_json(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> object:
    """The decoded JSON document, or :data:`NOT_JSON` for anything that is not one.

    Not UTF-8 (JSON exchanged between systems is UTF-8, RFC 8259 §8.1: UTF-16 or UTF-32,
    which ``json.loads`` would guess, are refused, so that the depth check below sees the
    same text the parser does), not JSON, or nested deeper than ``max_depth`` (checked
    before decoding, so a hostile answer cannot exhaust the stack): all count as not JSON.
    """
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            return NOT_JSON
    depth = 0
    for match in _JSON_NESTING.finditer(body):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return NOT_JSON
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return NOT_JSON


def interpret_token_response(
    response: requests.Response,
    body: bytes,
    *,
    redact: Redactor,
    issued_at: float,
    requested_scope: str | None,
    default_lifetime: float | None,
    token_url: str,
    notice: Callable[[str], None] | None = None,
    invalid_client_hint: str = "",
    dpop: bool = False,
) -> Token:
    """The token in ``response`` (whose ``body`` was read), or the error it stands for.

    ``notice`` receives what is worth a warning about a usable answer (see
    :func:`parse_token_response`). ``invalid_client_hint`` ends the message of an
    ``invalid_client`` error or of a 401 without an OAuth error (the client authentication
    method's advice). ``dpop``: the request carried a DPoP proof (see
    :func:`parse_token_response`).

    Raises :class:`~requests_oauthcc.errors.TokenError` (an RFC 6749 §5.2 error, also in
    a 2xx), :class:`~requests_oauthcc.errors.TokenEndpointError` (a redirect, another
    status without an OAuth error) or :class:`InvalidTokenResponseError`.
    """
    from .errors import TokenEndpointError

    status = response.status_code
    where = f"the token endpoint {token_url} answered {status}"
    if 300 <= status < 400:
        location = server_text(response.headers.get("Location", "(no Location)"), redact)
        raise TokenEndpointError(
            f"{where}, a redirect to {location!r}; token requests never follow redirects: "
            "set token_url to the final URL",
            token_url=token_url, status_code=status, response=response,
        )
    payload = load_json(body)
    if isinstance(payload, dict) and "error" in payload:
        raise token_error(payload, where, redact, token_url, response,
                          invalid_client_hint=invalid_client_hint)
    if not 200 <= status < 300:
        hint = _STATUS_HINTS.get(status, "")
        if status == 401 and invalid_client_hint:
            hint = f" ({invalid_client_hint})"
        raise TokenEndpointError(
            f"{where} without an OAuth error{hint}: {_excerpt(body, redact)}",
            token_url=token_url, status_code=status, response=response,
        )
    if payload is NOT_JSON:
        raise InvalidTokenResponseError(
            f"{where} with a body that is not JSON ({_shape(response, body)}); expected an "
            "RFC 6749 §5.1 JSON object",
            token_url=token_url, status_code=status, response=response,
        )
    return parse_token_response(
        payload, issued_at=issued_at, requested_scope=requested_scope,
        default_lifetime=default_lifetime, token_url=token_url, response=response,
        notice=notice, dpop=dpop, redact=redact,
    )


def parse_token_response(
    payload: object,
    *,
    issued_at: float,
    requested_scope: str | None = None,
    default_lifetime: float | None = None,
    token_url: str = "(unknown)",
    response: requests.Response | None = None,
    notice: Callable[[str], None] | None = None,
    dpop: bool = False,
    redact: Redactor = NO_SECRETS,
) -> Token:
    """A :class:`Token` from a decoded RFC 6749 §5.1 response, or a typed error.

    Lenient where real servers differ harmlessly: ``token_type`` in any case or spelled as
    API gateways do (:data:`~requests_oauthcc.token.BEARER_ALIASES`; ``Bearer`` when
    missing), ``expires_in`` as a number or a numeric string, ``scope`` as a string or a
    list of strings, and ``expires_in`` of ``0`` (which RFC 6749's grammar allows and
    several servers send for tokens that do not expire) taken as no lifetime given:
    ``default_lifetime``, or used until rejected; ``notice`` is told so. Strict where a
    mistake would hurt: the rules of :func:`~requests_oauthcc.token.checked_fields`, and a
    lifetime that is negative or not a finite number.

    ``dpop``: the request carried a DPoP proof, so a ``token_type`` of ``DPoP`` is
    accepted. A ``Bearer`` answer to it is accepted too, as RFC 9449 §5 lets a server
    issue tokens that are not bound (``notice`` is told: it is sent as a Bearer token).
    ``redact``: cuts the credentials sent out of the granted ``scope``, which logs show.
    """
    status = None if response is None else response.status_code

    def malformed(what: str) -> InvalidTokenResponseError:
        return InvalidTokenResponseError(
            f"the token endpoint {token_url} answered with an unusable token response: {what}",
            token_url=token_url, status_code=status, response=response,
        )

    if not isinstance(payload, dict):
        raise malformed(f"expected a JSON object, got {json_kind(payload)}")
    if "error" in payload:
        raise token_error(payload, f"the token endpoint {token_url} answered", NO_SECRETS,
                          token_url, response)
    try:
        access_token, token_type, scope = checked_fields(
            payload.get("access_token"), payload.get("token_type", "Bearer"),
            payload.get("scope", requested_scope), dpop=dpop,
        )
    except UnusableToken as exc:
        raise malformed(str(exc)) from None
    if scope is not None:
        scope = redact(scope)  # a granted scope echoing the credentials sent: never them
    if dpop and notice is not None and token_type.lower() != "dpop":
        notice(  # one message whatever the spelling: logged once per auth object
            f"the token endpoint {token_url} answered a DPoP token request with a Bearer "
            "token: it is not bound to the DPoP key (RFC 9449 §5 allows that) and is sent "
            "as a Bearer token, without proofs"
        )
    lifetime = _lifetime(payload.get("expires_in"), malformed)
    if lifetime == 0:
        if notice is not None:
            notice(
                f"the token endpoint {token_url} answered expires_in 0, taken as no lifetime "
                "given: " + ("a new token is used until the API rejects it" if
                             default_lifetime is None else "a new token is used for "
                             f"default_lifetime={default_lifetime:g}s")
                + " (a token already held keeps the expiry it had)"
            )
        lifetime = None
    if lifetime is None:
        lifetime = default_lifetime
    return Token(
        access_token=access_token,
        token_type=token_type,
        scope=scope,
        issued_at=issued_at,
        expires_at=None if lifetime is None else issued_at + lifetime,
        raw=dict(payload),
        refresh_in=_refresh_in(payload.get("refresh_in")),
    )


def _refresh_in(value: object) -> float | None:
    """Microsoft Entra ID's ``refresh_in``, read by the rule of ``expires_in`` (a number or
    a numeric string); only a hint: one that breaks the rule, or ``0``, is ``None``."""
    try:
        return _lifetime(value, ValueError) or None
    except ValueError:
        return None


def _lifetime(value: object, malformed: Callable[[str], Exception]) -> float | None:
    """``expires_in`` in seconds (``0`` included), ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise malformed(f"expires_in must be a number of seconds, got {json_kind(value)}")
    if isinstance(value, str):
        text = value.strip()
        if not _SECONDS.fullmatch(text):
            raise malformed("expires_in is a string that is not a number of seconds")
        value = text
    seconds = as_float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise malformed(f"expires_in must be a finite number of seconds, 0 or more, got {seconds}")
    return seconds


def token_error(
    payload: Mapping[str, Any],
    where: str,
    redact: Redactor,
    token_url: str,
    response: requests.Response | None,
    *,
    invalid_client_hint: str = "",
) -> TokenError | InvalidTokenResponseError:
    """The typed error for an RFC 6749 §5.2 error object; its fields are server text.

    ``invalid_client_hint`` ends the message of an ``invalid_client`` error.
    """
    status = None if response is None else response.status_code
    error = payload.get("error")
    if not isinstance(error, str) or not error:
        return InvalidTokenResponseError(
            f"{where} with an 'error' field that is not a string",
            token_url=token_url, status_code=status, response=response,
        )
    error = server_text(error, redact, limit=100)
    description = payload.get("error_description")
    description = server_text(description, redact) if isinstance(description, str) else None
    uri = payload.get("error_uri")
    uri = server_text(uri, redact) if isinstance(uri, str) else None
    message = f"{where}: {error}"
    if description:
        message += f": {description}"
    if error == "invalid_client" and invalid_client_hint:
        message += f" ({invalid_client_hint})"
    return token_error_class(error)(
        message, token_url=token_url, error=error, error_description=description,
        error_uri=uri, status_code=status, response=response,
    )


def _excerpt(body: bytes, redact: Redactor) -> str:
    """A quoted, cleaned, bounded excerpt of a non-2xx body that is not an OAuth error."""
    text = server_text(body.decode("utf-8", "replace"), redact)
    return repr(text) if text else "(empty body)"


def _shape(response: requests.Response, body: bytes) -> str:
    """What a body looks like, without quoting it: media type, size, apparent format."""
    media = server_text(response.headers.get("Content-Type", "no Content-Type"), limit=60)
    text = body.decode("utf-8", "replace").strip()
    if not text:
        kind = "empty"
    elif text[0] in "{[":
        kind = "starts like JSON but is not one JSON document"
    elif "=" in text and " " not in text and "<" not in text:
        kind = "looks form-encoded"
    elif text.startswith("<"):
        kind = "looks like HTML or XML"
    else:
        kind = "plain text"
    return f"{media}, {len(body)} bytes, {kind}"
