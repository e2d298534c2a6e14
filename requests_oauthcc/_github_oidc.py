"""GitHub Actions OIDC ID tokens as client assertions: fetched from the job's token
service, kept until shortly before they expire. Exported by :mod:`requests_oauthcc.platforms`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from ._fork import ForkSafeLock
from ._options import check_url
from ._peek import expires_at, numeric_date, peek
from ._urls import clear_text_reason, sends_in_clear, target_uri
from .endpoint import private_session
from .errors import ConfigurationError, CredentialError, InsecureTransportError
from .form import check_text
from .redaction import Redactor, Secret, SensitiveText, server_text
from .response import load_json
from .sources import assertion_text
from .transport import exchange

__all__ = ["GitHubActionsOIDC"]

logger = logging.getLogger(__name__)

URL_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_URL"
TOKEN_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
MAX_ANSWER_BYTES = 64 * 1024
"""A token service answer larger than this is refused unread (an ID token is a few KiB)."""
MIN_REMAINING = 5.0
"""Seconds an ID token must still be valid for, at least, to be handed out."""
MIN_MARGIN = 60.0
MARGIN_FRACTION = 0.1
"""A token is fetched again ``max(MIN_MARGIN, MARGIN_FRACTION * its lifetime)`` seconds
before its ``exp``."""
_PERMISSION_HINT = (
    "GitHub sets them only in a job whose workflow grants `permissions: id-token: write` "
    "(and not for pull requests from forks)"
)


RETRIES = 3
"""Transient failures (no answer, 429, 5xx) retried within the call's ``timeout``, as
``@actions/core``'s client retries them."""
RETRY_BACKOFF = 0.25
"""Seconds before the first retry, doubled for each next one."""
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Unavailable(CredentialError):
    """A failure that may pass: retried while the call's time allows."""


class _Held(NamedTuple):
    token: SensitiveText
    refresh_at: float
    """Clock reading after which the token is fetched again."""


class GitHubActionsOIDC:
    """A GitHub Actions OIDC ID token (a JWT) for ``client_assertion=``: call it for one.

    ``audience``: the ``aud`` the token is issued for (what the authorization server's
    federation expects); ``None`` or ``""`` for GitHub's default, the URL of the repository
    owner. ``timeout``: seconds for the whole request to the token service (connect,
    headers and body). ``environ``: where ``ACTIONS_ID_TOKEN_REQUEST_URL`` and
    ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` are read, once, here (default :data:`os.environ`).
    ``session``: a :class:`requests.Session` for the request (proxies, CA bundle); by
    default a private one, made on first use and closed by :meth:`close`. ``clock``:
    wall-clock seconds since the epoch, as ``exp`` counts them; tests inject their own.

    Each call follows ``@actions/core``'s ``getIDToken``: ``GET <url>&audience=<aud>``
    (the audience percent-encoded; ``?`` when the URL has no query) with
    ``Authorization: Bearer <request token>``; the answer is JSON ``{"value": "<jwt>"}``.
    The request goes through :func:`~requests_oauthcc.transport.exchange`: https (plain
    http only to a loopback host reached directly), no redirect followed, at most 64 KiB
    read, ``timeout`` bounding it all, retries included: a transient failure (no answer,
    429, 500, 502, 503, 504) is retried up to ``retries`` times (default 3), after 0.25 s,
    0.5 s, 1 s, while the timeout allows. The token is read, not verified
    (:mod:`~requests_oauthcc._peek`), for its ``exp``: it is kept until
    ``max(60 s, 10% of its lifetime)`` before then and handed out again meanwhile; one
    that expires within 5 s is never handed out. Threads share one lock, so callers at
    once wait for a single request. A token without ``exp`` is handed out but not kept.

    Raises :class:`ConfigurationError` here when a variable is missing (the workflow needs
    ``permissions: id-token: write``) or the audience, URL or timeout is unusable, and
    :class:`~requests_oauthcc.errors.InsecureTransportError` for a URL that would send the
    request token in the clear. A call raises :class:`CredentialError` when no token can
    be had (unreachable, too slow, a status other than 200, a body that is not JSON with a
    JWT ``value``, a token already expiring), saying what happened; the error carries no
    response, and its message holds neither token (server text only through
    :func:`~requests_oauthcc.redaction.server_text`, the request token redacted).

    ``repr`` shows the audience and the URL without its query. Pickles and deep-copies
    without its lock, Session and token (the copy fetches its own, with a private
    Session), so an auth holding it can go to a process pool; the pickle holds the request
    token.
    """

    def __init__(
        self,
        audience: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = RETRIES,
        environ: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if audience is not None and not isinstance(audience, str):
            raise ConfigurationError(f"audience must be a string; got {type(audience).__name__}")
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not math.isfinite(timeout) or timeout <= 0):
            raise ConfigurationError(f"timeout must be a positive number of seconds; got "
                                     f"{timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be a count (0 or more); got {retries!r}")
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigurationError("session must be a requests.Session")
        env = os.environ if environ is None else environ
        url = (env.get(URL_VARIABLE) or "").strip()
        request_token = (env.get(TOKEN_VARIABLE) or "").strip()
        missing = [name for name, value in ((URL_VARIABLE, url), (TOKEN_VARIABLE, request_token))
                   if not value]
        if missing:
            raise ConfigurationError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
                f"no GitHub Actions OIDC token can be requested; {_PERMISSION_HINT}"
            )
        if not request_token.isascii() or not request_token.isprintable() or " " in request_token:
            raise ConfigurationError(f"{TOKEN_VARIABLE} is not a bearer token (visible ASCII "
                                     "characters); it is set by GitHub, do not set it yourself")
        check_url(URL_VARIABLE, url)
        if sends_in_clear(url, session):
            raise InsecureTransportError(
                f"refusing {URL_VARIABLE} {target_uri(url)!r}: the request token would cross "
                f"the network in the clear: {clear_text_reason(url)}"
            )
        self._audience = check_text("audience", audience) if audience else None
        self._url = url
        self._request_token = Secret(request_token)
        self._timeout = float(timeout)
        self._retries = retries
        self._clock = clock
        self._session = session
        self._own_session = session is None
        self._lock = ForkSafeLock()
        self._held: _Held | None = None

    @property
    def audience(self) -> str | None:
        """The ``aud`` asked for; ``None``: GitHub's default."""
        return self._audience

    def __call__(self) -> SensitiveText:
        """The ID token: the one kept, or a new one (see the class docstring).

        Raises :class:`CredentialError`, or
        :class:`~requests_oauthcc.errors.InsecureTransportError` when requests would now
        send the request in the clear (a proxy for a plain-http URL)."""
        with self._lock:
            held = self._held
            if held is not None and self._clock() < held.refresh_at:
                return held.token
            self._held = None
            deadline = time.monotonic() + self._timeout
            attempt = 0
            while True:
                try:
                    token, claims = self._fetch(deadline)
                except _Unavailable as exc:
                    delay = RETRY_BACKOFF * 2 ** attempt
                    attempt += 1
                    if attempt > self._retries or time.monotonic() + delay >= deadline:
                        raise CredentialError(str(exc)) from exc.__cause__
                    logger.warning("GitHub Actions token service failed (%s); retrying in "
                                   "%.2fs", exc, delay)
                    time.sleep(delay)
                    continue
                return self._keep(token, claims)

    def _fetch(self, deadline: float) -> tuple[SensitiveText, Mapping[str, Any]]:
        def failed(message: str, response: requests.Response | None) -> CredentialError:
            return _Unavailable(f"could not get a GitHub Actions ID token: {message}")

        if self._session is None:
            self._session = private_session()  # in a forked child: fresh connections
        response, body = exchange(
            self._session, "GET", _with_audience(self._url, self.audience),
            headers={"Authorization": SensitiveText(f"Bearer {self._request_token.reveal()}"),
                     "Accept": "application/json"},
            timeout=self._timeout, deadline=deadline, fail=failed,
            max_body_bytes=MAX_ANSWER_BYTES, redact=self._redactor(),
        )
        where = f"the GitHub Actions token service ({target_uri(self._url)})"
        if response.status_code in TRANSIENT_STATUSES:
            raise _Unavailable(f"{where} answered {self._refusal(response, body)}")
        if response.status_code != 200:
            raise CredentialError(f"{where} answered {self._refusal(response, body)}")
        if body is None:
            raise CredentialError(f"{where} answered with more than {MAX_ANSWER_BYTES} bytes; "
                                  "refused unread")
        token, problem = _id_token(body)
        if token is None:
            raise CredentialError(f"{where} answered 200, but {problem}")
        try:
            _, claims = peek(token)
        except ValueError as exc:
            problem = f"its \"value\" is not a JWT: {exc}"
        if problem:
            raise CredentialError(f"{where} answered 200, but {problem}")
        return token, claims

    def _keep(self, token: SensitiveText, claims: Mapping[str, Any]) -> SensitiveText:
        """``token``, kept until its refresh time; :class:`CredentialError` when its ``exp``
        is unusable or within :data:`MIN_REMAINING` seconds."""
        try:
            exp = expires_at(claims)
        except ValueError as exc:
            raise CredentialError(f"the GitHub Actions ID token is unusable: {exc}") from None
        now = self._clock()
        if exp is None:
            logger.warning("the GitHub Actions ID token for audience %s has no exp claim: it "
                           "is not kept, each call fetches one", self.audience)
            return token
        if exp - now <= MIN_REMAINING:
            raise CredentialError(
                f"the GitHub Actions ID token expires {_when(exp - now)}; GitHub issued it "
                "already (nearly) expired by this machine's clock: check the clock"
            )
        try:
            iat = numeric_date(claims, "iat")
        except ValueError:
            iat = None  # unusable: the lifetime is counted from now
        issued = iat if iat is not None and iat < exp else now
        life = exp - issued
        # Counted from now as well as from exp: a runner clock behind GitHub's would
        # otherwise keep the token past its real expiry.
        refresh_at = min(exp, now + life) - max(MIN_MARGIN, MARGIN_FRACTION * life)
        self._held = _Held(token, refresh_at)
        logger.info("got a GitHub Actions ID token for audience %s from %s, expiring in %.0fs",
                    self.audience, target_uri(self._url), exp - now)
        return token

    def _refusal(self, response: requests.Response, body: bytes | None) -> str:
        """What a non-200 answer says, for a message: status, then cleaned server text."""
        redact = self._redactor()
        status = response.status_code
        if 300 <= status < 400:
            location = server_text(response.headers.get("Location", "(no Location)"), redact)
            return (f"{status}, a redirect to {location!r}, which is not followed: the request "
                    f"token goes only to {URL_VARIABLE}")
        text = "" if body is None else server_text(body.decode("utf-8", "replace"), redact)
        said = f" ({text})" if text else ""
        if status in (401, 403):
            return (f"{status}{said}: it refused the request token ({TOKEN_VARIABLE}), which "
                    "is valid only while the job it was issued to runs")
        return f"{status}{said}"

    def _redactor(self) -> Redactor:
        return Redactor([self._request_token])

    def close(self) -> None:
        """Close the private Session, if one was made (a ``session=`` given is left open).
        A later call makes a new one."""
        with self._lock:
            if self._own_session and self._session is not None:
                self._session.close()
                self._session = None

    def __repr__(self) -> str:
        return f"GitHubActionsOIDC(audience={self.audience!r}, url={target_uri(self._url)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"audience": self._audience, "url": self._url, "timeout": self._timeout,
                "retries": self._retries,
                "clock": self._clock, "request_token": self._request_token}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._audience = state["audience"]
        self._url = state["url"]
        self._timeout = state["timeout"]
        self._retries = state.get("retries", RETRIES)
        self._clock = state["clock"]
        self._request_token = state["request_token"]
        self._session = None
        self._own_session = True
        self._lock = ForkSafeLock()
        self._held = None


def _with_audience(url: str, audience: str | None) -> str:
    """``url`` with ``audience=<aud>`` (percent-encoded) added to its query."""
    if audience is None:
        return url
    parts = urlsplit(url)
    pair = "audience=" + quote(audience, safe="")
    return urlunsplit(parts._replace(query=f"{parts.query}&{pair}" if parts.query else pair,
                                     fragment=""))


def _id_token(body: bytes) -> tuple[SensitiveText | None, str]:
    """``(token, "")`` from the token service's answer, or ``(None, what is wrong)``.

    A function of its own, so that no frame left in a traceback holds the decoded answer.
    """
    document = load_json(body)
    if not isinstance(document, dict):
        return None, "not with a JSON object"
    value = document.get("value")
    if not isinstance(value, str) or not value:
        return None, "its JSON has no \"value\" string (the ID token)"
    try:
        return assertion_text(value), ""
    except ValueError as exc:
        return None, f"its \"value\" {exc}"


def _when(seconds: float) -> str:
    return f"in {seconds:.0f}s" if seconds > 0 else f"{-seconds:.0f}s ago"
