"""Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0).

:class:`DiscoveredEndpoint` stands in for a token endpoint whose URL (and, unless given,
client authentication method) comes from the issuer's metadata, fetched on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ._options import check_url
from ._urls import sends_in_clear
from .client_auth import ClientCredentials
from .endpoint import TokenEndpoint
from .errors import ConfigurationError, DiscoveryError, InsecureTransportError
from .redaction import server_text
from .response import MAX_JSON_DEPTH, load_json
from .token import Token, json_kind
from .transport import MAX_BODY_BYTES, Timeout, exchange

if TYPE_CHECKING:
    from ._proofs import Proofs

__all__ = [
    "DiscoveredEndpoint",
    "Issuer",
    "choose_auth_method",
    "fetch_metadata",
    "metadata_urls",
]

logger = logging.getLogger(__name__)

_TLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")


@dataclass(frozen=True)
class Issuer:
    """An issuer URL given in place of a token URL: the token endpoint is discovered.

    ``ClientCredentialsAuth(Issuer(url), ...)`` is ``ClientCredentialsAuth.from_issuer(url, ...)``.
    """

    url: str


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata of ``issuer`` may be, in the order they are tried.

    RFC 8414 §3.1 inserts ``/.well-known/oauth-authorization-server`` between the host and
    the issuer's path; OpenID Connect Discovery appends ``/.well-known/openid-configuration``
    to the issuer (RFC 8414 §5 notes both forms). Last, for an issuer with a path, the
    RFC 8414 document appended to the issuer, where some servers mounted under a path
    publish it (django-oauth-toolkit under ``/o/``, say); the ``issuer`` it names must
    still equal the issuer asked for.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(well_known_path: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, well_known_path, "", ""))

    urls = [at("/.well-known/oauth-authorization-server" + path),
            at(path + "/.well-known/openid-configuration")]
    if path:
        urls.append(at(path + "/.well-known/oauth-authorization-server"))
    return urls


def fetch_metadata(
    issuer: str, session: requests.Session, timeout: Timeout, *, allow_http: bool = False
) -> Mapping[str, Any]:
    """The metadata document of ``issuer``, checked to be about that very issuer.

    Each metadata request goes through :func:`~requests_oauthcc.transport.exchange`, under
    the rules of token requests: https (plain http only to this host, or with
    ``allow_http``), ``timeout`` (seconds, or ``(connect, read)``) bounding the whole
    request, at most 1 MiB, JSON nested at most 32 deep. No redirect is followed: the
    metadata of an issuer is at its own well-known URL (RFC 8414 §3), and following one
    would let whoever answers the first hop choose the token endpoint the secret goes to.

    Raises :class:`DiscoveryError` (with the error from requests as its cause, if any) or
    :class:`InsecureTransportError`.
    """
    last: requests.Response | None = None
    for url in metadata_urls(issuer):

        def unreachable(message: str, response: requests.Response | None) -> DiscoveryError:
            return DiscoveryError(f"could not fetch the metadata of {issuer}: {message}",
                                  issuer=issuer, response=response)

        response, body = exchange(
            session, "GET", url, headers={"Accept": "application/json"}, timeout=timeout,
            allow_http=allow_http, fail=unreachable,
        )
        last = response
        status = response.status_code
        if 300 <= status < 400:
            location = server_text(response.headers.get("Location", "(no Location)"))
            raise DiscoveryError(
                f"{url} answered {status}, a redirect to {location!r}; metadata requests "
                f"never follow redirects: the metadata of {issuer} must be served at its "
                "well-known URL (RFC 8414 §3)",
                issuer=issuer, response=response,
            )
        if status in (404, 405, 410):
            continue
        if status != 200:
            raise DiscoveryError(
                f"{url} answered {status}; expected the metadata of {issuer}",
                issuer=issuer, response=response,
            )
        if body is None:
            raise DiscoveryError(
                f"{url} answered with metadata over {MAX_BODY_BYTES} bytes; refused",
                issuer=issuer, response=response,
            )
        metadata = load_json(body)
        if not isinstance(metadata, dict):
            raise DiscoveryError(
                f"{url} did not answer with a JSON object (nested at most {MAX_JSON_DEPTH} "
                "deep)", issuer=issuer, response=response,
            )
        if metadata.get("issuer") != issuer:
            raise DiscoveryError(
                f"{url} describes issuer {_quoted(metadata.get('issuer'))}, not {issuer!r}: "
                "refusing metadata of another server (RFC 8414 §3.3)",
                issuer=issuer, response=response,
            )
        logger.info("discovered the metadata of %s at %s", issuer, url)
        return metadata
    raise DiscoveryError(
        f"no metadata found for {issuer} (tried {', '.join(metadata_urls(issuer))}); pass "
        "token_url to ClientCredentialsAuth instead",
        issuer=issuer, response=last,
    )


def _quoted(value: object) -> str:
    """A metadata value for a message: a string cleaned and quoted, else its JSON kind."""
    if isinstance(value, str):
        return repr(server_text(value, limit=100))
    return json_kind(value)


def choose_auth_method(
    supported: Sequence[str] | None, credentials: ClientCredentials, issuer: str
) -> str:
    """The best method the server lists that the given credentials allow.

    A key or a client assertion prefers ``private_key_jwt``; a secret ``client_secret_basic``, then
    ``client_secret_post``, then ``client_secret_jwt``; a certificate the mTLS methods.
    A server that lists nothing supports ``client_secret_basic`` (RFC 8414 §2).
    """
    offered = list(supported) if supported else ["client_secret_basic"]
    wanted: list[str] = []
    if credentials.key is not None or credentials.assertion is not None:
        wanted.append("private_key_jwt")
    if credentials.secret is not None:
        wanted += ["client_secret_basic", "client_secret_post", "client_secret_jwt"]
    if credentials.has_cert:
        wanted += list(_TLS_METHODS)
    for method in wanted:
        if method in offered:
            return method
    raise DiscoveryError(
        f"{issuer} supports {server_text(', '.join(offered))} for the token endpoint, and "
        "none of them fits the credentials given "
        f"(which allow: {', '.join(wanted) or 'nothing'})",
        issuer=issuer,
    )


class DiscoveredEndpoint:
    """A token endpoint found through the issuer's metadata on the first token request.

    ``build(token_url, auth_method)`` makes the real :class:`TokenEndpoint`. ``dpop``: the
    auth's DPoP proofs, whose algorithm the metadata's ``dpop_signing_alg_values_supported``
    chooses (:meth:`~requests_oauthcc._proofs.Proofs.choose_alg`). ``client_id`` names
    the client in telemetry (``""``: named by its assertion). A failed
    discovery is raised and tried again at the next request; a successful one is kept.
    """

    def __init__(
        self,
        issuer: str,
        *,
        session: requests.Session,
        timeout: Timeout,
        credentials: ClientCredentials,
        auth_method: str | None,
        build: Callable[[str, str], TokenEndpoint],
        allow_http: bool,
        dpop: Proofs | None = None,
        client_id: str = "",
    ) -> None:
        self.issuer = issuer
        self._client_id = client_id
        self._session = session
        self._timeout = timeout
        self._credentials = credentials
        self._auth_method = auth_method
        self._build = build
        self._allow_http = allow_http
        self._dpop = dpop
        self._lock = threading.Lock()
        self.endpoint: TokenEndpoint | None = None

    def fetch(self) -> Token:
        """Discover (once), then request a token. With OpenTelemetry instrumented, the
        discovery is part of the first token request's span: an issuer whose metadata
        cannot be had fails token requests, and is counted so."""
        endpoint = self.endpoint
        if endpoint is not None:
            return endpoint.fetch()
        from ._observers import Observers

        began = time.monotonic()  # the discovery is part of the request, and of its duration
        telemetry = Observers.telemetry
        if telemetry is None:
            return self._discovered().fetch_traced(None, began)
        with telemetry.token_request(self.issuer, self._client_id) as trace:
            endpoint = self._discovered()
            trace.sent_to(endpoint.token_url)
            return endpoint.fetch_traced(trace, began)

    def _discovered(self) -> TokenEndpoint:
        with self._lock:
            endpoint = self.endpoint = self.endpoint or self._discover()
        return endpoint

    def _discover(self) -> TokenEndpoint:
        metadata = fetch_metadata(self.issuer, self._session, self._timeout,
                                  allow_http=self._allow_http)
        supported = metadata.get("token_endpoint_auth_methods_supported")
        if supported is not None and not (
            isinstance(supported, list) and all(isinstance(m, str) for m in supported)
        ):
            raise DiscoveryError(
                "token_endpoint_auth_methods_supported is not a list of strings",
                issuer=self.issuer,
            )
        method = self._auth_method or choose_auth_method(supported, self._credentials,
                                                         self.issuer)
        token_url = metadata.get("token_endpoint")
        aliases = metadata.get("mtls_endpoint_aliases")
        if method in _TLS_METHODS and isinstance(aliases, dict):
            token_url = aliases.get("token_endpoint", token_url)
        if not _usable_url(token_url):
            shown = ("a URL with user info" if isinstance(token_url, str) and "@" in token_url
                     else _quoted(token_url))
            raise DiscoveryError(
                f"the metadata of {self.issuer} has no usable token_endpoint ({shown})",
                issuer=self.issuer,
            )
        assert isinstance(token_url, str)
        downgrade = self.issuer.lower().startswith("https:") and not token_url.lower(
        ).startswith("https:")
        if not self._allow_http and (downgrade or sends_in_clear(token_url, self._session)):
            raise InsecureTransportError(
                f"the metadata of {self.issuer} names a plain-http token_endpoint "
                f"{_quoted(token_url)}: the client secret would leave TLS (an https issuer "
                "must name an https token endpoint, RFC 6749 §3.2)"
            )
        if self._dpop is not None:
            self._dpop.choose_alg(metadata.get("dpop_signing_alg_values_supported"),
                                  self.issuer)
        logger.info("using token endpoint %s with %s", token_url, method)
        return self._build(token_url, method)


def _usable_url(value: object) -> bool:
    """An http(s) URL without whitespace or control characters (it goes into logs) that
    a configured ``token_url`` could be too (:func:`~requests_oauthcc._options.check_url`:
    one that parses, names a host and holds no user info)."""
    if not (isinstance(value, str) and value.isprintable()
            and not any(ch.isspace() for ch in value)):
        return False
    try:
        check_url("token_endpoint", value)
    except ConfigurationError:
        return False
    return True
