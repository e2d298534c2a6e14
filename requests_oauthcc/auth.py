"""The requests adapter: attach the token (and, with DPoP, a proof) to each request, and
retry once on a 401 (or another status named in ``refresh_on``).

Follows requests' own ``HTTPDigestAuth``: ``__call__`` only sets the headers and registers
a response hook, :meth:`~requests_oauthcc.resend.Resender.on_response`, which resends.
The constructor is the one place that turns the options into the objects that do the
work.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import requests

from ._destinations import Destinations, ProxyGuard
from ._options import (
    Options,
    check_client_id,
    check_dpop,
    check_files,
    check_on_event,
    check_origins,
    check_private_key,
    check_seconds,
    check_statuses,
    check_timeout,
    check_transport,
    check_url,
    replayable,
    replayable_params,
)
from .client_auth import (
    ClientCredentials,
    SecretSource,
    default_auth_method,
    hold_secret,
    make_client_auth,
)
from .endpoint import TokenEndpoint, private_session
from .errors import ConfigurationError
from .form import grant_parameters
from .redaction import hidden
from .resend import Resender
from .retry import TokenRetry
from .reuse import TokenHolder
from .token import Token

if TYPE_CHECKING:  # imported where used, so that `import requests_oauthcc` stays light
    from ._jwt import PrivateKeySource
    from .cache import TokenCache
    from .certificates import Cert, CertFiles
    from .discovery import DiscoveredEndpoint, Issuer
    from .dpop import DPoPKey
    from .events import Event
    from .private_keys import PrivateKey
    from .sources import AssertionSource
    from .transport import Timeout

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

    Options (all keyword-only but the first three):

    ``token_url``: the token endpoint (https, or http to a loopback host).
    ``client_id``: the client identifier; ``None`` only with ``client_assertion``, when the
    assertion alone names the client (RFC 7521 §4.2 makes ``client_id`` optional then).
    ``client_secret``: a string, or a zero-argument callable returning one (called at
    each token request, e.g. to re-read a rotated secret), or a
    :class:`~requests_oauthcc.SecretFile` (read again when the file changes).
    ``scope``: a string or an iterable of strings (sent space-joined).
    ``audience``: the vendor ``audience`` parameter (Auth0, Okta, ...).
    ``resource``: an RFC 8707 resource indicator, or several (one form field each).
    ``extra_params``: further form fields (a value may be a list: one field each); the
    fields this class sets itself are refused, with what to pass instead.
    ``auth_method``: an RFC 7591 name: ``client_secret_basic``, ``client_secret_post``,
    ``client_secret_jwt``, ``private_key_jwt``, ``tls_client_auth`` or
    ``self_signed_tls_client_auth``. Default: ``client_secret_basic`` for a secret,
    ``private_key_jwt`` for a key, ``tls_client_auth`` for a certificate alone.
    ``client_id_in_body``: with ``client_secret_basic``, send ``client_id`` in the form
    too, as some servers require (RFC 6749 §2.3.1 does not ask for it; other methods
    send it already). Default ``False``.
    ``private_key``: for ``private_key_jwt``, a PEM string or bytes, a JWK dict, a path (read
    again when the file changes), a zero-argument callable returning one of those, or a
    :class:`~requests_oauthcc.PrivateKey` grouping the key with its ``kid``, password and
    algorithm; ``private_key_id`` (the ``kid``: a str, or a callable giving it at each token
    request), ``private_key_password`` (for an encrypted PEM: str, bytes or a callable),
    ``signing_alg`` and ``assertion_audience`` (the assertion's ``aud``, default the token
    URL) refine it.
    ``client_assertion``: a client assertion made elsewhere (RFC 7523 §2.2), sent as
    ``client_assertion`` with ``private_key_jwt``: a zero-argument callable returning it
    (:class:`~requests_oauthcc.platforms.GitHubActionsOIDC`, your own) or a
    :class:`pathlib.Path` of a file holding it (a Kubernetes projected service-account
    token, the Entra ID federated token file), read again when it changes. An assertion
    whose ``exp`` has passed or passes within 5 s is read again; still stale, it is not
    sent: :class:`~requests_oauthcc.CredentialError`.
    ``cert``: a client certificate for token requests, as requests takes it (mTLS methods);
    its files are checked at each token request, and after they change the token
    Session's connections for the token URL are closed (a new certificate needs new TLS
    connections).
    ``dpop``: a :class:`~requests_oauthcc.DPoPKey`: tokens are then bound to it (RFC 9449):
    every token request and every request carrying a DPoP token has a fresh proof, a
    redirect hop that keeps the token gets its own, and the servers' nonces are kept per
    origin (a 400 or 401 asking for a new one is sent again once with it). With discovery,
    the metadata's ``dpop_signing_alg_values_supported`` chooses among the key's
    algorithms. A server answering with a Bearer token (RFC 9449 §5 allows it) is logged
    once; that token is sent as Bearer.
    ``leeway``: seconds before expiry at which a new token is fetched (default 30); a token
    living shorter than ten times the leeway is refreshed at 90% of its life.
    ``timeout``: seconds bounding each token request whole (connect, headers and body), or
    ``(connect, read)``: then connect + read in all (default 10).
    ``retries``: retries of transient token request failures: a count or a
    :class:`~requests_oauthcc.TokenRetry` (default 3; 0 disables).
    ``default_lifetime``: seconds to use a token whose response has no ``expires_in``,
    or ``expires_in: 0`` (default: until the API rejects it).
    ``refresh_on``: the API statuses that mean "this token is no longer good: fetch a new
    one and retry once": ``(401,)`` (the default, RFC 6750 §3.1) or ``(401, 403)`` for
    APIs that answer an expired or revoked token with 403 (django-oauth-toolkit's
    protected views do). A 403 whose ``WWW-Authenticate`` says ``insufficient_scope`` is
    never retried, and a token received less than ``MIN_REFRESH_INTERVAL`` (1 s) ago is
    not replaced because of a 403, so an API that forbids every call costs at most about
    one token request per second.
    ``session``: a :class:`requests.Session` for token requests (proxies, CA bundle, client
    certificate). Default: a private Session; never the Session this auth is mounted on.
    ``allowed_origins``: ``scheme://host[:port]`` strings (no path, query or user info);
    when given, the token is only attached to requests for these origins, other requests
    go out without it.
    ``insecure_allow_http``: allow plain-http token URLs and APIs that are not loopback
    hosts, or that requests would reach through a proxy. Tokens and secrets then cross
    the network in the clear: for test rigs only.
    ``cache``: a :class:`~requests_oauthcc.cache.TokenCache` shared with other auth
    objects, processes or hosts (``FileTokenCache``, ``RedisTokenCache``); default: this
    auth object's own memory.
    ``on_event``: a callable receiving an :class:`~requests_oauthcc.events.Event` for each
    token fetched (from the endpoint or a shared cache), token request failed, API request
    retried or refusal returned unretried, DPoP nonce retry and shared-cache lookup
    (:mod:`~requests_oauthcc.events`); never called while a token request is in progress,
    its exceptions logged and ignored. Without it no event is built (unless OpenTelemetry
    is instrumented: :mod:`~requests_oauthcc.otel`).
    ``clock``: a monotonic clock (seconds); tests inject their own.

    **Transport security.** A token or secret is only sent where
    :func:`~requests_oauthcc._urls.sends_in_clear` is false: https, or plain http to
    ``localhost``, 127.0.0.0/8 or ``::1`` when requests connects directly (no proxy,
    judged with requests' own proxy selection, ``NO_PROXY`` included); otherwise
    :class:`~requests_oauthcc.InsecureTransportError` is raised before anything is sent.
    The token URL is judged with the token Session. An API request is judged when the
    auth is called, where only the prepared request is visible: the environment's
    proxies are applied as a Session with ``trust_env=True`` applies them, but a Session's
    ``proxies`` attribute and a ``proxies=`` argument cannot be seen there. The Session
    from :meth:`make_session` also checks at send time, with the proxies requests really
    uses; on another Session, an http proxy set in ``proxies`` for a loopback API gets the
    token. With ``trust_env=False`` and a proxy in the environment, a loopback API is
    refused although requests would connect directly: exempt it with ``NO_PROXY``.

    **Copies.** The auth pickles (so a Session carrying it can go to a ``spawn`` or
    ``forkserver`` process pool) and ``copy.deepcopy`` works: either way the copy is built
    again from the constructor's options (deep copies of them), with its own lock, token
    Session and no token. ``copy.copy`` shares the options (the same ``session=`` and
    ``cache=`` objects) and has its own token. A pickle holds the client secret, the
    private key and the DPoP key: protect it like them. A ``client_secret`` callable must
    itself pickle (a module-level function, :class:`~requests_oauthcc.SecretFile`).
    """

    def __init__(  # noqa: PLR0915 - the one place that turns the options into objects
        self,
        token_url: str | Issuer,
        client_id: str | None,
        client_secret: SecretSource | None = None,
        *,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        resource: str | Iterable[str] | None = None,
        extra_params: Mapping[str, str | Iterable[str]] | None = None,
        auth_method: str | None = None,
        client_id_in_body: bool = False,
        private_key: PrivateKeySource | PrivateKey | Callable[[], PrivateKeySource] | None = None,
        private_key_id: str | Callable[[], str | None] | None = None,
        private_key_password: str | bytes | Callable[[], str | bytes] | None = None,
        signing_alg: str | None = None,
        assertion_audience: str | None = None,
        client_assertion: AssertionSource | None = None,
        cert: Cert | None = None,
        dpop: DPoPKey | None = None,
        cache: TokenCache | None = None,
        leeway: float = DEFAULT_LEEWAY,
        timeout: Timeout = DEFAULT_TIMEOUT,
        retries: int | TokenRetry | None = 3,
        default_lifetime: float | None = None,
        refresh_on: Iterable[int] = (401,),
        session: requests.Session | None = None,
        allowed_origins: Iterable[str] | None = None,
        insecure_allow_http: bool = False,
        on_event: Callable[[Event], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        client_secret = hold_secret(client_secret)  # from here on no frame local shows it
        private_key = hidden(private_key)  # a PEM text or a JWK: shown by no repr either
        private_key_password = hidden(private_key_password)
        # One-shot iterables are kept as tuples: the options are read again by copies.
        scope, resource, allowed_origins, refresh_on = map(
            replayable, (scope, resource, allowed_origins, refresh_on))
        extra_params = replayable_params(extra_params)
        # The options as given: pickling and copying build the auth again from them.
        self._options = Options({k: v for k, v in locals().items() if k != "self"})
        issuer = None if isinstance(token_url, str) else _issuer_url(token_url)
        url = issuer if issuer is not None else token_url
        check_url("issuer" if issuer is not None else "token_url", url)
        assert isinstance(url, str)
        check_transport("issuer" if issuer else "token_url", url, session, insecure_allow_http)
        check_client_id(client_id, client_assertion is not None, cache is not None)
        observers = check_on_event(on_event)
        token_session = session if session is not None else private_session()
        cert = check_files(cert, token_session, client_secret)
        self._proofs = check_dpop(dpop)
        key = check_private_key(private_key, private_key_id, private_key_password, signing_alg,
                                client_assertion)
        if key is not None:  # copies are built from the value, which pickles as it should
            self._options.update(private_key=key, private_key_id=None,
                                 private_key_password=None)
        if client_assertion is not None:
            from .sources import assertion_source

            client_assertion = assertion_source(client_assertion)
        credentials = ClientCredentials(
            secret=client_secret,
            key=key,
            assertion=client_assertion,
            signing_alg=signing_alg,
            assertion_audience=assertion_audience,
            has_cert=bool(cert or token_session.cert),
        )
        cert_paths = cert or token_session.cert
        self._cert_files: CertFiles | None = None
        cert_watch = None
        if cert_paths:
            from .certificates import CertFiles, CertWatch

            self._cert_files = CertFiles(cert_paths)
            cert_watch = CertWatch(self._cert_files)
        form = grant_parameters(
            scope=scope, audience=audience, resource=resource, extra_params=extra_params
        )
        requested_scope = dict(form).get("scope")
        checked_timeout = check_timeout(timeout)
        endpoint_for = partial(
            TokenEndpoint,
            client_id=client_id or "",
            session=token_session,
            form=form,
            requested_scope=requested_scope,
            timeout=checked_timeout,
            retry=TokenRetry.from_value(retries),
            default_lifetime=check_seconds("default_lifetime", default_lifetime, allow_none=True),
            cert=cert,
            cert_watch=cert_watch,
            allow_http=bool(insecure_allow_http),
            clock=clock,
            dpop=self._proofs,
            observers=observers,
        )

        def build(endpoint_url: str, method: str) -> TokenEndpoint:
            client_auth = make_client_auth(method, credentials,
                                           client_id_in_body=bool(client_id_in_body))
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
                allow_http=insecure_allow_http, dpop=self._proofs, client_id=client_id or "",
            )
        else:
            assert auth_method is not None
            self._source = build(url, auth_method)
        self._client_id = client_id
        self._requested_scope = requested_scope
        self._token_session = token_session
        self._owns_session = session is None
        checked_leeway = check_seconds("leeway", leeway)
        shared = None
        if cache is not None:
            from .shared import shared_source

            shared = shared_source(
                cache, self._source.fetch, token_url=url, client_id=client_id or "",
                auth_method=auth_method or "(discovered)", secret=client_secret,
                cert=cert_paths, private_key=key, assertion=credentials.assertion, form=form,
                audience=audience, dpop=self._proofs, leeway=checked_leeway, clock=clock,
                observers=observers)
        self._holder = TokenHolder(
            self._source.fetch, leeway=checked_leeway, clock=clock, shared=shared,
            observers=observers,
        )
        self._clock = clock
        self._allowed_origins = (
            None if allowed_origins is None else check_origins(allowed_origins)
        )
        self._destinations = Destinations(self._allowed_origins, bool(insecure_allow_http))
        self._refresh_on = check_statuses("refresh_on", refresh_on)
        self._resender = Resender(self._holder, self._proofs, self._refresh_on,
                                  self._destinations, clock, observers=observers)
        self._hook = partial(self._resender.on_response, None, True)
        self._attached: tuple[tuple[Token, float] | None, float, str, partial[Any]] = (
            None, -math.inf, "", self._hook)
        """For the fast path of ``__call__``: the holder's ``current`` it was made for, its
        refresh time, the header and the hook of its token; unusable until a token is."""

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
        ``CLIENT_SECRET_FILE`` (read again when it changes), ``PRIVATE_KEY_FILE`` (read
        again when it changes) or ``CLIENT_ASSERTION_FILE`` (a client assertion's file, read
        again when it changes),
        ``SCOPE``, ``AUDIENCE``, ``RESOURCE`` (space-separated URIs), ``AUTH_METHOD``,
        ``CLIENT_ID_IN_BODY`` (true/false), ``REFRESH_ON`` (statuses besides 401,
        space-separated), and for DPoP (RFC 9449) ``DPOP_KEY_FILE``: a PEM private key or
        a JSON private JWK, read once here with
        :func:`~requests_oauthcc.config.load_dpop_key` (``dpop=`` is then that key), with
        ``DPOP_ALG`` choosing among the key's algorithms (e.g. ``PS256`` for an RSA key).
        A ``dpop=`` option wins: the variables are then not read. Raises
        :class:`~requests_oauthcc.ConfigurationError` naming the variable at fault.
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
        return self._holder.get(rejected=self._holder.token, force=True)

    def invalidate(self) -> None:
        """Forget the current token: the next request fetches a new one."""
        self._holder.invalidate()

    def make_session(self) -> requests.Session:
        """A new Session with this auth mounted and the same client certificate.

        With the mTLS methods, tokens are certificate-bound (RFC 8705 §3): the API must be
        called with the certificate used for the token request, which this Session does;
        after the certificate files change (noticed at the next token request), its
        ``https://`` adapter closes the connections opened with the old certificate.
        Its ``http://`` adapter checks each request carrying this auth's token against the
        proxies requests really uses for it (the Session's ``proxies``, a ``proxies=``
        argument, the environment) and raises
        :class:`~requests_oauthcc.InsecureTransportError` instead of sending the token
        through a proxy in the clear.
        """
        api = requests.Session()
        api.auth = self
        api.mount("http://", ProxyGuard(self._check_proxies))
        if self._cert_files is not None:
            from .certificates import CertificateAdapter

            api.cert = self._cert_files.cert
            api.mount("https://", CertificateAdapter(self._cert_files))
        return api

    def close(self) -> None:
        """Stop background work and close the private token Session.

        Waits for a refresh ahead of expiry in progress (bounded by ``timeout`` and the
        retry deadline, like any token request), and for the ``on_event`` calls of its
        thread; afterwards no thread is started again: a
        request made after ``close()`` still works, refreshing on its own thread. A Session
        passed as ``session=`` is left open.
        """
        self._holder.close()
        if self._owns_session:
            self._token_session.close()

    # -- copies -----------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        import pickle

        for name in ("client_secret", "client_assertion", "private_key", "on_event"):
            value = self._options[name]
            if value is None or isinstance(value, str):
                continue
            try:
                pickle.dumps(value)
            except Exception as exc:  # any failure to pickle: the error names the type
                advice = ("a module-level function (or a functools.partial of one)"
                          if name == "on_event" else
                          "a file (SecretFile, a Path), a str or a module-level function")
                raise ConfigurationError(
                    f"this auth cannot be pickled: its {name} ({type(value).__name__}) "
                    f"cannot be ({type(exc).__name__}); pass {advice} to send it to another "
                    "process"
                ) from exc
        return self._options

    def __setstate__(self, state: dict[str, Any]) -> None:
        ClientCredentialsAuth.__init__(self, **state)

    def __copy__(self) -> ClientCredentialsAuth:
        copied = type(self).__new__(type(self))
        ClientCredentialsAuth.__init__(copied, **self._options)
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientCredentialsAuth:
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        ClientCredentialsAuth.__init__(copied, **copy.deepcopy(dict(self._options), memo))
        return copied

    def __repr__(self) -> str:
        source = getattr(self, "_source", None)
        if source is None:  # shown in a traceback of a constructor that failed
            return f"<{type(self).__name__} (not built)>"
        endpoint = source if isinstance(source, TokenEndpoint) else source.endpoint
        where = (f"token_url={endpoint.token_url!r}" if endpoint is not None
                 else f"issuer={getattr(source, 'issuer', None)!r}")
        method = endpoint.client_auth.name if endpoint is not None else "(discovered)"
        dpop = "" if self._proofs is None else f", dpop={self._proofs.key!r}"
        return (
            f"{type(self).__name__}({where}, client_id={self._client_id!r}, "
            f"scope={self._requested_scope!r}, auth_method={method!r}{dpop})"
        )

    # -- requests hooks ---------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        # The per-request path: no lock, no I/O, no logging. Its fast form serves the common
        # case (a fresh Bearer token, an https URL, no allowed_origins) from ``_attached``,
        # what was attached last, valid while it was made for the holder's current state
        # (replaced whole by every change, so compared by identity); anything else takes
        # ``_attach``. The scheme test is two string comparisons ("https://" <= url <
        # "https:/0" holds exactly for the URLs that start with "https://"): no call, no
        # allocation, unlike ``url.startswith`` or a slice.
        held, refresh_at, header, hook = self._attached
        if (held is self._holder.current and self._clock() < refresh_at
                and "https://" <= (r.url or "") < "https:/0"):
            r.headers["Authorization"] = header
            r.hooks["response"].append(hook)
            return r
        return self._attach(r)

    def _attach(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """The per-request path in full: ``allowed_origins``, plain http (loopback only), a
        token to fetch or refresh, DPoP proofs; remembers what the fast path may reuse."""
        url = r.url or ""
        if (
            self._allowed_origins is not None or not url.startswith("https://")
        ) and not self._destinations.may_attach(url):
            return r
        current = self._holder.current
        if current is None or self._clock() >= current[1]:  # noqa: SIM108 - fastest form
            token = self._holder.get()
        else:
            token = current[0]
        r.headers["Authorization"] = token.authorization
        if token.dpop:  # only with dpop=: a DPoP token is refused otherwise
            r.headers["DPoP"] = self._proofs.for_request(  # type: ignore[union-attr]
                r.method or "GET", url, token)
        hook = self._hook
        if hook.args[0] is not token:  # one hook per token, built once, not per request
            hook = self._hook = partial(self._resender.on_response, token, True)
        r.hooks["response"].append(hook)
        current = self._holder.current  # what the fast path may reuse, all of one state
        if (current is not None and current[0] is token and not token.dpop
                and self._allowed_origins is None):
            self._attached = (current, current[1], token.authorization, hook)
        return r

    def _check_proxies(
        self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None
    ) -> None:
        """At send time (:class:`ProxyGuard`): our token never goes to a proxy in clear."""
        ours = self._resender.on_response
        if any(getattr(hook, "func", None) == ours for hook in request.hooks.get("response", ())):
            self._destinations.check_proxies(request.url or "", proxies)

def _issuer_url(value: object) -> str | None:
    from .discovery import Issuer

    return value.url if isinstance(value, Issuer) else None


