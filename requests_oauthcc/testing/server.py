"""The local OAuth 2.0 authorization server and protected resource.

Stdlib only, on 127.0.0.1 with a free port, one thread per connection::

    with OAuthTestServer(clients={"my-client": "my-secret"}, token_lifetime=60) as server:
        auth = ClientCredentialsAuth(server.token_url, "my-client", "my-secret")
        requests.get(server.resource_url, auth=auth)
        assert server.token_requests == 1

Endpoints:

- ``POST /token``: the client credentials grant, with every client authentication method
  of clients.py (``client_secret_basic`` decoded as RFC 6749 §2.3.1 says,
  ``client_secret_post``, the JWT and mTLS methods) and platform-issued client assertions
  (RFC 7521 §4.2: a Kubernetes, Entra ID or GitHub Actions token of a
  :class:`~requests_oauthcc.testing.FederatedIdentity`, checked as federation.py says);
  answers RFC 6749 §5.1/§5.2. A request with a ``DPoP`` header gets a DPoP-bound token
  (RFC 9449 §5), see below.
- ``/resource`` (any method, any sub-path): 200 with a JSON echo of the request for a valid
  token, an RFC 6750 (or RFC 9449 §7.1) 401 otherwise. Under ``/resource/cookie`` a 401 also
  sets a cookie, and the echo shows the cookies received.
- ``/redirect?to=URL&status=302``: a redirect.
- ``/unauthorized``: always an RFC 6750 401.

DPoP (RFC 9449), checked by :class:`~requests_oauthcc.testing.dpop.DPoPProofChecker`:

- Token endpoint: a valid proof (``htm`` POST, ``htu`` the token URL as addressed) gets
  ``token_type: "DPoP"`` and a token bound to the proof key's thumbprint
  (:attr:`IssuedToken.jkt`); an invalid one a 400 ``invalid_dpop_proof``; a missing or
  stale nonce (with ``dpop_nonce``) a 400 ``use_dpop_nonce`` with a ``DPoP-Nonce`` header.
  Any token response carries ``DPoP-Nonce`` while nonces are on and the request did not
  use the current one (§8.2), so clients learn rotated nonces without an error.
- Resource: a bound token must come as ``Authorization: DPoP <token>`` with a proof for
  this method and URL, the token's ``ath`` and the bound key. Refusals are 401s with
  ``WWW-Authenticate: DPoP error="invalid_token" | "invalid_dpop_proof" |
  "use_dpop_nonce", algs="..."`` (plus ``DPoP-Nonce`` for the last). A bound token sent as
  ``Bearer``, or an unbound one sent as ``DPoP``, is ``invalid_token``. The 200 echo has
  ``dpop_jkt``: the proof's thumbprint, or null for a bearer token.
- The token endpoint and the resource have their own nonces, as real deployments do.
  Without a ``DPoP`` header nothing of PyJWT is imported.

Controls: :meth:`revoke_all`, :meth:`expire_all`, :meth:`queue_response` (canned answers
for the next token requests: error statuses, malformed bodies, delays),
:meth:`rotate_dpop_nonces`; records: counters, :attr:`token_log`, :attr:`dpop_proofs`.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any

from .clients import ClientRegistry, OAuthFailure
from .dpop import DEFAULT_ALGS, CheckedProof, DPoPProofChecker
from .federation import FederatedIdentity, Federation
from .handler import Handler
from .records import CannedResponse, IssuedToken, TokenRequestRecord
from .serving import LoopbackService, QuietServer

__all__ = ["CannedResponse", "IssuedToken", "OAuthTestServer", "TokenRequestRecord"]


class OAuthTestServer(LoopbackService):
    """A local authorization server plus protected resource (see the module docstring).

    ``clients``: client id -> secret, or a sequence of secrets that are all accepted (a
    secret rotation: old and new). ``token_lifetime``: seconds, or ``None`` to leave
    ``expires_in`` out. ``allowed_scopes``: when given, other scopes get ``invalid_scope``.
    ``granted_scope``: when given, the scope granted whatever was asked.
    ``expires_in_as_string`` and ``token_type`` shape the token response.
    ``token_delay``: seconds the token endpoint waits before answering each token request
    (a slow identity provider; default 0); canned answers (:meth:`queue_response`) keep
    their own ``delay``. An attribute: it may be changed while the server runs.
    ``certfile``/``keyfile``: serve https with this certificate chain and key (PEM paths).
    ``client_ca``: with https, ask clients for a certificate issued by this CA (PEM path);
    the verified certificate's subject is then visible to the handler.
    ``client_keys``: client id -> public key (PEM or JWK dict), or a sequence of keys
    all accepted, for ``private_key_jwt``; ``client_secret_jwt`` uses the secrets in
    ``clients``.
    ``federated_clients``: client id -> :class:`FederatedIdentity` (or a sequence of
    them): the client authenticates with a JWT its platform issued, sent as
    ``client_assertion`` (RFC 7521 §4.2, RFC 7523 §2.2) with or without ``client_id``
    (without: the one client whose identity has the token's ``iss`` and ``sub``). The
    issuer's keys are discovered and fetched from ``{iss}/.well-known/openid-configuration``
    (cached; fetched again once for an unknown ``kid``); signature, ``iss``, ``sub``,
    ``aud`` and ``exp`` are checked, ``jti`` is not (a platform token is reused until
    rotated). Refusals are 401 ``invalid_client``; the token log records
    ``private_key_jwt`` and an ``assertion:`` credential. See
    :class:`~requests_oauthcc.testing.FakeIssuer` for a platform to issue them.
    ``tls_clients``: client id -> certificate subject CN for the mTLS methods.
    ``issuer_path``: a path for the issuer (``https://host:port/tenant``).
    ``metadata``: ``"rfc8414"``, ``"oidc"`` or ``None``: which well-known document is served.
    ``metadata_overrides``: fields replacing those of the metadata document.
    ``catch_all``: any path ending in ``/token`` is the token endpoint, any well-known path
    serves metadata for the issuer its Host header and path name, and any other unknown
    path is the protected resource (to stand in for real servers' URL layouts).

    DPoP (RFC 9449; see the module docstring): ``dpop``: ``False`` makes a server without
    DPoP support, which ignores proofs and issues Bearer tokens (RFC 9449 §5 allows a server
    to issue unbound tokens). A bound token's ``token_type`` is ``DPoP``, or ``token_type``
    when that is another spelling of it. ``dpop_nonce``: the token endpoint and the
    resource require server nonces in proofs (§8, §9), each its own, rotated every 300 s or
    by :meth:`rotate_dpop_nonces`. ``dpop_required``: token requests without a ``DPoP``
    header get 400 ``invalid_dpop_proof`` (as for a client registered with
    ``dpop_bound_access_tokens``, §5.2). ``dpop_algs``: the proof algorithms accepted,
    asymmetric only (default :data:`~requests_oauthcc.testing.dpop.DEFAULT_ALGS`), also
    published as ``dpop_signing_alg_values_supported`` in the metadata and as ``algs`` in
    the resource's ``DPoP`` challenges. The checkers are :attr:`token_dpop` and
    :attr:`resource_dpop` (``.nonce()`` gives each one's current nonce); every accepted
    proof is appended to :attr:`dpop_proofs` as ``("token" | "resource", CheckedProof)``.

    Records: :attr:`token_log` has a :class:`TokenRequestRecord` per token request, whose
    ``credential`` fingerprints the secret, key, assertion or certificate that
    authenticated it (:func:`~requests_oauthcc.testing.credential_fingerprint`).
    """

    _thread_name = "oauth-test-server"

    def __init__(
        self,
        clients: Mapping[str, str | Sequence[str]] | None = None,
        *,
        token_lifetime: float | None = 3600,
        allowed_scopes: Iterable[str] | None = None,
        granted_scope: str | None = None,
        expires_in_as_string: bool = False,
        token_type: str = "Bearer",
        token_delay: float = 0.0,
        host: str = "127.0.0.1",
        certfile: str | None = None,
        keyfile: str | None = None,
        client_ca: str | None = None,
        client_keys: Mapping[str, Any] | None = None,
        tls_clients: Mapping[str, str] | None = None,
        federated_clients: Mapping[str, FederatedIdentity | Sequence[FederatedIdentity]]
        | None = None,
        issuer_path: str = "",
        metadata: str | None = "rfc8414",
        metadata_overrides: Mapping[str, Any] | None = None,
        catch_all: bool = False,
        dpop: bool = True,
        dpop_nonce: bool = False,
        dpop_required: bool = False,
        dpop_algs: Iterable[str] | None = None,
    ) -> None:
        super().__init__(host)
        self.registry = ClientRegistry(
            secrets=dict(clients if clients is not None else {"test-client": "test-secret"}),
            keys=dict(client_keys or {}),
            certificates=dict(tls_clients or {}),
            federation=Federation(federated_clients),
        )
        self.issuer_path = "/" + issuer_path.strip("/") if issuer_path.strip("/") else ""
        self.metadata_style = metadata
        self.metadata_overrides: dict[str, Any] = dict(metadata_overrides or {})
        self.catch_all = catch_all
        self.token_lifetime = token_lifetime
        self.allowed_scopes = None if allowed_scopes is None else frozenset(allowed_scopes)
        self.granted_scope = granted_scope
        self.expires_in_as_string = expires_in_as_string
        self.token_type = token_type
        self.token_delay = token_delay
        self._tls = (certfile, keyfile, client_ca) if certfile else None
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._canned: deque[CannedResponse] = deque()
        self.token_requests = 0
        self.resource_requests = 0
        self.resource_rejections = 0
        self.token_log: list[TokenRequestRecord] = []
        self.access_tokens_issued: list[str] = []
        self.dpop = dpop
        self.dpop_nonce = dpop_nonce
        self.dpop_required = dpop_required
        self.dpop_algs = tuple(DEFAULT_ALGS if dpop_algs is None else dpop_algs)
        self.token_dpop = DPoPProofChecker(require_nonce=dpop_nonce, algs=self.dpop_algs)
        self.resource_dpop = DPoPProofChecker(require_nonce=dpop_nonce, algs=self.dpop_algs)
        self.dpop_proofs: list[tuple[str, CheckedProof]] = []

    # -- lifecycle (serving.py) and addresses -----------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class BoundHandler(Handler):
            oauth = server

        return BoundHandler

    def _wrap_socket(self, httpd: QuietServer) -> None:
        if self._tls is not None:
            certfile, keyfile, client_ca = self._tls
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            if client_ca:
                context.load_verify_locations(client_ca)
                context.verify_mode = ssl.CERT_OPTIONAL
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)

    def _scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def issuer(self) -> str:
        return self.base_url + self.issuer_path

    def metadata_document(self) -> dict[str, Any]:
        """The server metadata (RFC 8414) as served, overrides applied."""
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "client_secret_jwt",
                "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth",
            ],
            "token_endpoint_auth_signing_alg_values_supported": [
                "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA", "HS256",
            ],
        }
        if self.dpop:
            document["dpop_signing_alg_values_supported"] = list(self.dpop_algs)
        document.update(self.metadata_overrides)
        return document

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def resource_url(self) -> str:
        return f"{self.base_url}/resource"

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- controls ---------------------------------------------------------------------

    def revoke_all(self) -> None:
        """Forget every issued token: the resource answers 401 to them."""
        with self._lock:
            self._tokens.clear()

    def expire_all(self) -> None:
        """Make every issued token expire now (the client does not know until a 401)."""
        now = time.monotonic()
        with self._lock:
            self._tokens = {k: replace(v, expires_at=now) for k, v in self._tokens.items()}

    @property
    def client_id(self) -> str:
        """The first registered client's id (the fixtures' client)."""
        return next(iter(self.registry.secrets))

    @property
    def client_secret(self) -> str:
        """The first registered client's secret (its first one, when it has several)."""
        return self.registry.secrets_of(self.client_id)[0]

    def queue_response(
        self,
        status: int = 200,
        body: bytes | str | Mapping[str, Any] | list[Any] = b"",
        *,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        count: int = 1,
        echo: bool = False,
    ) -> None:
        """Answer the next ``count`` token requests with this instead of a token.

        ``body``: bytes, text, or a JSON value (sent as ``application/json``).
        ``delay``: seconds to wait before answering (to provoke client timeouts).
        ``echo``: append the request's form body, ``Authorization`` header and decoded
        Basic credentials to the body, as error pages of careless servers do (to test that
        nothing echoed reaches your logs).
        """
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = bytes(body)  # type: ignore[arg-type]
        with self._lock:
            self._canned.extend([CannedResponse(status, data, hdrs, delay, echo)] * count)

    def rotate_dpop_nonces(self) -> tuple[str, str]:
        """New current DPoP nonces for the token endpoint and the resource, returned in
        that order; the previous ones are still accepted until the next rotation."""
        return self.token_dpop.rotate_nonce(), self.resource_dpop.rotate_nonce()

    def issued_tokens(self) -> dict[str, IssuedToken]:
        """A copy of the live tokens, by access token."""
        with self._lock:
            return dict(self._tokens)

    # -- used by the handler ----------------------------------------------------------

    def _next_canned(self) -> CannedResponse | None:
        with self._lock:
            self.token_requests += 1
            return self._canned.popleft() if self._canned else None

    def _record_dpop(self, where: str, proof: CheckedProof) -> None:
        with self._lock:
            self.dpop_proofs.append((where, proof))

    def _issue(
        self,
        client_id: str,
        form: Mapping[str, list[str]],
        thumbprint: str | None = None,
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        requested = form.get("scope", [None])[0]
        if self.allowed_scopes is not None and requested is not None:
            unknown = set(requested.split()) - self.allowed_scopes
            if unknown:
                raise OAuthFailure(400, "invalid_scope", f"scope not allowed: {sorted(unknown)}")
        scope = self.granted_scope if self.granted_scope is not None else requested
        access_token = secrets.token_urlsafe(24)
        lifetime = self.token_lifetime
        issued = IssuedToken(
            client_id=client_id,
            scope=scope,
            expires_at=None if lifetime is None else time.monotonic() + lifetime,
            resource=tuple(form.get("resource", [])),
            audience=form.get("audience", [None])[0],
            cert_thumbprint=thumbprint,
            jkt=jkt,
        )
        with self._lock:
            self._tokens[access_token] = issued
            self.access_tokens_issued.append(access_token)
        token_type = self.token_type  # RFC 9449 §5: DPoP for a bound token
        if jkt is not None and token_type.lower() != "dpop":
            token_type = "DPoP"
        answer: dict[str, Any] = {"access_token": access_token, "token_type": token_type}
        if lifetime is not None:
            answer["expires_in"] = str(int(lifetime)) if self.expires_in_as_string else lifetime
        if scope is not None:
            answer["scope"] = scope
        return answer

    def _live_token(self, access_token: str, thumbprint: str | None = None) -> IssuedToken | None:
        """The issued token, if it is known, unexpired, and presented over the certificate
        it is bound to (if any); DPoP binding is the resource's to check."""
        with self._lock:
            issued = self._tokens.get(access_token)
        if issued is None:
            return None
        if issued.expires_at is not None and time.monotonic() >= issued.expires_at:
            return None
        if issued.cert_thumbprint is not None and issued.cert_thumbprint != thumbprint:
            return None  # a certificate-bound token presented without its certificate
        return issued
