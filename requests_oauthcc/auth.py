"""The requests adapter: attach the token to each request, and retry once on a 401.

Follows requests' own ``HTTPDigestAuth``: ``__call__`` only sets the header and registers
a response hook; the hook drains the 401, copies the request, rewinds its body and resends
it through the same connection adapter, so hooks do not fire again and it cannot loop.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import requests
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import UnrewindableBodyError
from requests.utils import rewind_body

from ._urls import is_plain_http_to_remote, origin
from .client_auth import (
    Cert,
    ClientCredentials,
    SecretSource,
    default_auth_method,
    make_client_auth,
)
from .endpoint import Timeout, TokenEndpoint, private_session
from .errors import ConfigurationError, InsecureTransportError
from .form import grant_parameters
from .retry import TokenRetry
from .reuse import TokenHolder
from .token import Token

if TYPE_CHECKING:  # imported where used, so that `import requests_oauthcc` stays light
    from ._jwt import PrivateKeySource
    from .cache import TokenCache
    from .discovery import DiscoveredEndpoint, Issuer

__all__ = ["ClientCredentialsAuth"]

logger = logging.getLogger(__name__)

DEFAULT_LEEWAY: Final = 30.0
DEFAULT_TIMEOUT: Final = 10.0


class ClientCredentialsAuth(requests.auth.AuthBase):
    """OAuth 2.0 Client Credentials (RFC 6749 §4.4) for requests.

    ::

        session.auth = ClientCredentialsAuth(token_url, client_id, client_secret, scope="read")

    The token is fetched on the first request, reused until ``leeway`` seconds before it
    expires, and a 401 from the API is retried once with a new token.

    ``token_url``: the token endpoint (https, or http to a loopback host).
    ``client_id``: the client identifier.
    ``client_secret``: a string, or a zero-argument callable returning one (called at
    each token request, e.g. to re-read a rotated secret).
    ``scope``: a string or an iterable of strings (sent space-joined).
    ``audience``: the vendor ``audience`` parameter (Auth0, Okta, ...).
    ``resource``: an RFC 8707 resource indicator, or several (one form field each).
    ``extra_params``: further form fields (a value may be a list: one field each).
    ``auth_method``: an RFC 7591 name: ``client_secret_basic``, ``client_secret_post``,
    ``client_secret_jwt``, ``private_key_jwt``, ``tls_client_auth`` or
    ``self_signed_tls_client_auth``. Default: ``client_secret_basic`` for a secret,
    ``private_key_jwt`` for a key, ``tls_client_auth`` for a certificate alone.
    ``private_key``: for ``private_key_jwt``, a PEM string or bytes, a path or a JWK dict;
    ``private_key_id`` (the ``kid``), ``signing_alg`` and ``assertion_audience`` (the
    assertion's ``aud``, default the token URL) refine it.
    ``cert``: a client certificate for token requests, as requests takes it (mTLS methods).
    ``leeway``: seconds before expiry at which a new token is fetched (default 30); a token
    living shorter than ten times the leeway is refreshed at 90% of its life.
    ``timeout``: seconds for each token request, or ``(connect, read)`` (default 10).
    ``retries``: retries of transient token request failures: a count or a
    :class:`~requests_oauthcc.TokenRetry` (default 3; 0 disables).
    ``default_lifetime``: seconds to use a token whose response has no ``expires_in``
    (default: until the API rejects it).
    ``session``: a :class:`requests.Session` for token requests (proxies, CA bundle, client
    certificate). Default: a private Session; never the Session this auth is mounted on.
    ``allowed_origins``: ``scheme://host[:port]`` strings; when given, the token is only
    attached to requests for these origins, other requests go out without it.
    ``insecure_allow_http``: allow plain-http token URLs and APIs on non-loopback hosts.
    Tokens and secrets then cross the network in the clear: for test rigs only.
    ``cache``: a :class:`~requests_oauthcc.cache.TokenCache` shared with other auth
    objects, processes or hosts (``FileTokenCache``, ``RedisTokenCache``); default: this
    auth object's own memory.
    ``clock``: a monotonic clock (seconds); tests inject their own.
    """

    def __init__(
        self,
        token_url: str | Issuer,
        client_id: str,
        client_secret: SecretSource | None = None,
        *,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        resource: str | Iterable[str] | None = None,
        extra_params: Mapping[str, str | Iterable[str]] | None = None,
        auth_method: str | None = None,
        private_key: PrivateKeySource | None = None,
        private_key_id: str | None = None,
        signing_alg: str | None = None,
        assertion_audience: str | None = None,
        cert: Cert | None = None,
        cache: TokenCache | None = None,
        leeway: float = DEFAULT_LEEWAY,
        timeout: Timeout = DEFAULT_TIMEOUT,
        retries: int | TokenRetry | None = 3,
        default_lifetime: float | None = None,
        session: requests.Session | None = None,
        allowed_origins: Iterable[str] | None = None,
        insecure_allow_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        issuer = None if isinstance(token_url, str) else _issuer_url(token_url)
        url = issuer if issuer is not None else token_url
        _check_url("issuer" if issuer is not None else "token_url", url)
        assert isinstance(url, str)
        if not insecure_allow_http and is_plain_http_to_remote(url):
            raise InsecureTransportError(
                f"{'issuer' if issuer else 'token_url'} {url!r} is plain http to a non-loopback "
                "host: the client secret and the token would cross the network in the clear. "
                "Use https (or insecure_allow_http=True, for test rigs only)"
            )
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigurationError("session must be a requests.Session (used for token requests)")
        token_session = session if session is not None else private_session()
        credentials = ClientCredentials(
            secret=client_secret,
            key=None if private_key is None else _signing_key(
                private_key, private_key_id, signing_alg),
            signing_alg=signing_alg,
            assertion_audience=assertion_audience,
            has_cert=bool(cert or token_session.cert),
        )
        form = grant_parameters(
            scope=scope, audience=audience, resource=resource, extra_params=extra_params
        )
        requested_scope = dict(form).get("scope")
        checked_timeout = _check_timeout(timeout)
        endpoint_for = partial(
            TokenEndpoint,
            client_id=client_id,
            session=token_session,
            form=form,
            requested_scope=requested_scope,
            timeout=checked_timeout,
            retry=TokenRetry.from_value(retries),
            default_lifetime=_check_seconds("default_lifetime", default_lifetime, allow_none=True),
            cert=cert,
            clock=clock,
        )

        def build(endpoint_url: str, method: str) -> TokenEndpoint:
            client_auth = make_client_auth(method, credentials)
            return endpoint_for(token_url=endpoint_url, client_auth=client_auth)

        if auth_method is None and issuer is None:
            auth_method = default_auth_method(credentials)
        self._source: TokenEndpoint | DiscoveredEndpoint
        if issuer is not None:
            from .discovery import DiscoveredEndpoint

            if auth_method is not None:  # configuration errors surface now, not at discovery
                make_client_auth(auth_method, credentials)
            self._source = DiscoveredEndpoint(
                issuer, session=token_session, timeout=checked_timeout,
                credentials=credentials, auth_method=auth_method, build=build,
                allow_http=insecure_allow_http,
            )
        else:
            assert auth_method is not None
            self._source = build(url, auth_method)
        self._client_id = client_id
        self._requested_scope = requested_scope
        self._token_session = token_session
        self._cert = cert
        self._owns_session = session is None
        checked_leeway = _check_seconds("leeway", leeway)
        shared = None
        if cache is not None:
            from .cache import CacheKey, CredentialFingerprint
            from .shared import SharedTokenSource

            key = CacheKey(
                CredentialFingerprint(  # secrets and keys never share a token (issue #10)
                    url, client_id, secret=client_secret, cert=cert or token_session.cert,
                    private_key=None if credentials.key is None else credentials.key.key),
                token_url=url, client_id=client_id, auth_method=auth_method or "(discovered)",
                scope=requested_scope, audience=audience,
                resources=[v for k, v in form if k == "resource"],
                extra_params=[(k, v) for k, v in form
                              if k not in ("scope", "audience", "resource")],
            )
            shared = SharedTokenSource(cache, key, self._source.fetch, leeway=checked_leeway,
                                       clock=clock)
        self._holder = TokenHolder(
            self._source.fetch, leeway=checked_leeway, clock=clock, shared=shared
        )
        self._clock = clock
        self._allowed_origins = (
            None if allowed_origins is None else _check_origins(allowed_origins)
        )
        self._allow_http = bool(insecure_allow_http)
        self._hook = partial(self._retry_on_401, None)
        self._http_verdicts: dict[str, bool] = {}

    @classmethod
    def from_issuer(
        cls, issuer: str, client_id: str, client_secret: SecretSource | None = None,
        **options: Any,
    ) -> ClientCredentialsAuth:
        """An auth whose token endpoint comes from the issuer's metadata (RFC 8414 / OIDC).

        The metadata is fetched on the first request (then kept); its ``issuer`` must equal
        ``issuer``. Without ``auth_method=``, the best method the server lists in
        ``token_endpoint_auth_methods_supported`` that the credentials allow is used.
        ``options`` are the constructor's keyword options.
        """
        from .discovery import Issuer

        return cls(Issuer(issuer), client_id, client_secret, **options)

    @classmethod
    def from_env(
        cls, prefix: str = "OAUTH_", *, environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> ClientCredentialsAuth:
        """An auth configured from environment variables (``options`` take precedence).

        Reads ``{prefix}TOKEN_URL`` or ``{prefix}ISSUER``, ``CLIENT_ID``, ``CLIENT_SECRET`` or
        ``CLIENT_SECRET_FILE`` (re-read at each token request), ``PRIVATE_KEY_FILE``,
        ``SCOPE``, ``AUDIENCE``, ``RESOURCE`` (space-separated URIs) and ``AUTH_METHOD``.
        """
        from .config import environment_options

        return cls(**environment_options(prefix, os.environ if environ is None else environ,
                                         options))

    # -- public API -------------------------------------------------------------------

    @property
    def token(self) -> Token | None:
        """The current token, or ``None`` before the first fetch or after ``invalidate()``."""
        return self._holder.token

    def fetch_token(self) -> Token:
        """Fetch a new token now (e.g. for a health check) and use it from now on."""
        return self._holder.get(rejected=self._holder.token)

    def invalidate(self) -> None:
        """Forget the current token: the next request fetches a new one."""
        self._holder.invalidate()

    def make_session(self) -> requests.Session:
        """A new Session with this auth mounted and the same client certificate.

        With the mTLS methods, tokens are certificate-bound (RFC 8705 §3): the API must be
        called with the certificate used for the token request, which this Session does.
        """
        api = requests.Session()
        api.auth = self
        cert = self._cert or self._token_session.cert
        if cert:
            api.cert = cert
        return api

    def close(self) -> None:
        """Close the private token Session (a Session passed as ``session=`` is left open)."""
        if self._owns_session:
            self._token_session.close()

    def __repr__(self) -> str:
        source = self._source
        endpoint = source if isinstance(source, TokenEndpoint) else source.endpoint
        where = (f"token_url={endpoint.token_url!r}" if endpoint is not None
                 else f"issuer={getattr(source, 'issuer', None)!r}")
        method = endpoint.client_auth.name if endpoint is not None else "(discovered)"
        return (
            f"{type(self).__name__}({where}, client_id={self._client_id!r}, "
            f"scope={self._requested_scope!r}, auth_method={method!r})"
        )

    # -- requests hooks ---------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        # The per-request path: no lock, no I/O, no logging; the hook is built once per token.
        url = r.url or ""
        if (
            self._allowed_origins is not None or not url.startswith("https://")
        ) and not self._may_attach(url):
            return r
        current = self._holder.current
        if current is None or self._clock() >= current[1]:  # noqa: SIM108 - fastest form
            token = self._holder.get()
        else:
            token = current[0]
        r.headers["Authorization"] = token.authorization
        hook = self._hook
        if hook.args[0] is not token:  # one hook per token, built once, not per request
            hook = self._hook = partial(self._retry_on_401, token)
        r.hooks["response"].append(hook)
        return r

    def _may_attach(self, url: str) -> bool:
        """Whether the token may go to ``url``: allowed origin, and not plain http afar."""
        if self._allowed_origins is not None and origin(url) not in self._allowed_origins:
            return False
        if not self._allow_http and self._plain_http_to_remote(url):
            raise InsecureTransportError(
                f"refusing to send a bearer token over plain http to {origin(url)}: use "
                "https (or insecure_allow_http=True, for test rigs only)"
            )
        return True

    def _plain_http_to_remote(self, url: str) -> bool:
        """:func:`is_plain_http_to_remote`, remembered per ``scheme://authority`` prefix.

        Parsing the URL and the host address costs more than the rest of the per-request
        path; loopback APIs over http would pay it on every request.
        """
        end = url.find("/", url.find("//") + 2)
        prefix = url if end < 0 else url[:end]
        verdict = self._http_verdicts.get(prefix)
        if verdict is None:
            verdict = is_plain_http_to_remote(url)
            if len(self._http_verdicts) >= 64:
                self._http_verdicts.clear()
            self._http_verdicts[prefix] = verdict
        return verdict

    def _retry_on_401(
        self, token: Token | None, r: requests.Response, **kwargs: Any
    ) -> requests.Response:
        """Response hook: on a 401 to our token, resend once with a new token."""
        if r.status_code != 401 or token is None:
            return r
        request = r.request
        if request.headers.get("Authorization") != token.authorization:
            logger.debug("401 from %s to a request without our token: not retried", request.url)
            return r
        connection = getattr(r, "connection", None)
        if connection is None or not _rewind(request):
            logger.debug(
                "401 from %s: body cannot be sent again; token dropped, 401 returned",
                request.url,
            )
            self._holder.invalidate(token)
            return r
        new_token = self._holder.get(rejected=token)
        logger.debug("401 from %s: retrying once with a new token", request.url)
        r.content  # noqa: B018 - drain the 401 so its connection can be reused
        r.close()
        prep = request.copy()
        extract_cookies_to_jar(prep._cookies, request, r.raw)  # type: ignore[attr-defined,no-untyped-call]
        prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        prep.headers["Authorization"] = new_token.authorization
        retried: requests.Response = connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        return retried


def _issuer_url(value: object) -> str | None:
    from .discovery import Issuer

    return value.url if isinstance(value, Issuer) else None


def _signing_key(key: PrivateKeySource, key_id: str | None, alg: str | None) -> Any:
    from ._jwt import load_signing_key

    return load_signing_key(key, key_id, alg)


def _rewind(request: requests.PreparedRequest) -> bool:
    """Make the body ready to be sent again; ``False`` if it cannot be.

    Bytes and text bodies are sent again as they are. A file-like body is rewound to
    the position requests recorded when it prepared the request (``rewind_body``); a
    generator, or a stream whose position could not be read, cannot be replayed.
    """
    body: Any = request.body  # typed bytes | str | None, but files and generators are sent too
    if body is None or isinstance(body, (bytes, str)):
        return True
    try:
        rewind_body(request)
    except (UnrewindableBodyError, OSError, ValueError):
        return False
    return True


def _check_url(name: str, url: object) -> None:
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise ConfigurationError(f"{name} must be an http(s) URL string; got {url!r}")


def _check_seconds(name: str, value: object, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (allow_none and value == 0)
    ):
        raise ConfigurationError(f"{name} must be a non-negative number of seconds; got {value!r}")
    return float(value)


def _check_timeout(timeout: object) -> Timeout:
    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect, read = (_check_seconds("timeout", part) for part in timeout)
        return (connect, read)
    seconds: float = _check_seconds("timeout", timeout)
    if seconds == 0:
        raise ConfigurationError("timeout must be positive (token requests always have one)")
    return seconds


def _check_origins(origins: Iterable[str]) -> frozenset[str]:
    if isinstance(origins, str):
        origins = [origins]
    checked = set()
    for value in origins:
        _check_url("allowed_origins entry", value)
        checked.add(origin(value))
    return frozenset(checked)
