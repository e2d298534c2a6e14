"""The local OAuth 2.0 authorization server and protected resource.

Stdlib only, on 127.0.0.1 with a free port, one thread per connection::

    with OAuthTestServer(clients={"my-client": "my-secret"}, token_lifetime=60) as server:
        auth = ClientCredentialsAuth(server.token_url, "my-client", "my-secret")
        requests.get(server.resource_url, auth=auth)
        assert server.token_requests == 1

Endpoints:

- ``POST /token``: the client credentials grant, with ``client_secret_basic`` (decoded as
  RFC 6749 §2.3.1 says) or ``client_secret_post``; answers RFC 6749 §5.1/§5.2.
- ``/resource`` (any method, any sub-path): 200 with a JSON echo of the request for a valid
  bearer token, an RFC 6750 401 otherwise. Under ``/resource/cookie`` a 401 also sets a
  cookie, and the echo shows the cookies received.
- ``/redirect?to=URL&status=302``: a redirect.
- ``/unauthorized``: always an RFC 6750 401.

Controls: :meth:`revoke_all`, :meth:`queue_response` (canned answers for the next token
requests: error statuses, malformed bodies, delays), counters and a log of token requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from .clients import ClientRegistry, OAuthFailure, authenticate_client

__all__ = ["CannedResponse", "IssuedToken", "OAuthTestServer", "TokenRequestRecord"]


@dataclass(frozen=True)
class CannedResponse:
    """An answer the token endpoint gives instead of its own, once."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    echo: bool = False
    """Append what the request carried (body, Authorization, decoded Basic user-pass), as
    careless servers do in error pages."""


@dataclass(frozen=True)
class TokenRequestRecord:
    """What one token request carried: its form, how the client authenticated, headers.

    ``client_id`` and ``auth_method`` are ``None`` when the client was not authenticated
    (also when the request got a canned answer from :meth:`OAuthTestServer.queue_response`).
    """

    form: Mapping[str, list[str]]
    client_id: str | None
    auth_method: str | None
    headers: Mapping[str, str]


@dataclass(frozen=True)
class IssuedToken:
    """A token the server issued, as the resource checks it."""

    client_id: str
    scope: str | None
    expires_at: float | None
    resource: tuple[str, ...] = ()
    audience: str | None = None
    cert_thumbprint: str | None = None
    """SHA-256 of the client certificate the token was issued over (RFC 8705 §3), if any."""


class OAuthTestServer:
    """A local authorization server plus protected resource (see the module docstring).

    ``clients``: client id -> secret. ``token_lifetime``: seconds, or ``None`` to leave
    ``expires_in`` out. ``allowed_scopes``: when given, other scopes get ``invalid_scope``.
    ``granted_scope``: when given, the scope granted whatever was asked.
    ``expires_in_as_string`` and ``token_type`` shape the token response.
    ``certfile``/``keyfile``: serve https with this certificate chain and key (PEM paths).
    ``client_ca``: with https, ask clients for a certificate issued by this CA (PEM path);
    the verified certificate's subject is then visible to the handler.
    ``client_keys``: client id -> public key (PEM or JWK dict) for ``private_key_jwt``;
    ``client_secret_jwt`` uses the secret in ``clients``.
    ``tls_clients``: client id -> certificate subject CN for the mTLS methods.
    ``issuer_path``: a path for the issuer (``https://host:port/tenant``).
    ``metadata``: ``"rfc8414"``, ``"oidc"`` or ``None``: which well-known document is served.
    ``metadata_overrides``: fields replacing those of the metadata document.
    ``catch_all``: any path ending in ``/token`` is the token endpoint, any well-known path
    serves metadata for the issuer its Host header and path name, and any other unknown
    path is the protected resource (to stand in for real servers' URL layouts).
    """

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        *,
        token_lifetime: float | None = 3600,
        allowed_scopes: Iterable[str] | None = None,
        granted_scope: str | None = None,
        expires_in_as_string: bool = False,
        token_type: str = "Bearer",
        host: str = "127.0.0.1",
        certfile: str | None = None,
        keyfile: str | None = None,
        client_ca: str | None = None,
        client_keys: Mapping[str, Any] | None = None,
        tls_clients: Mapping[str, str] | None = None,
        issuer_path: str = "",
        metadata: str | None = "rfc8414",
        metadata_overrides: Mapping[str, Any] | None = None,
        catch_all: bool = False,
    ) -> None:
        self.registry = ClientRegistry(
            secrets=dict(clients if clients is not None else {"test-client": "test-secret"}),
            keys=dict(client_keys or {}),
            certificates=dict(tls_clients or {}),
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
        self._host = host
        self._tls = (certfile, keyfile, client_ca) if certfile else None
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._canned: deque[CannedResponse] = deque()
        self.token_requests = 0
        self.resource_requests = 0
        self.resource_rejections = 0
        self.token_log: list[TokenRequestRecord] = []
        self.access_tokens_issued: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> OAuthTestServer:
        """Start serving on a free port; returns self."""
        server = self

        class Handler(_Handler):
            oauth = server

        self._httpd = _QuietServer((self._host, 0), Handler)
        if self._tls is not None:
            certfile, keyfile, client_ca = self._tls
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            if client_ca:
                context.load_verify_locations(client_ca)
                context.verify_mode = ssl.CERT_OPTIONAL
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oauth-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OAuthTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("OAuthTestServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

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
        """The first registered client's secret."""
        return self.registry.secrets[self.client_id]

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

    def issued_tokens(self) -> dict[str, IssuedToken]:
        """A copy of the live tokens, by access token."""
        with self._lock:
            return dict(self._tokens)

    # -- used by the handler ----------------------------------------------------------

    def _next_canned(self) -> CannedResponse | None:
        with self._lock:
            self.token_requests += 1
            return self._canned.popleft() if self._canned else None

    def _issue(
        self, client_id: str, form: Mapping[str, list[str]], thumbprint: str | None = None
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
        )
        with self._lock:
            self._tokens[access_token] = issued
            self.access_tokens_issued.append(access_token)
        answer: dict[str, Any] = {"access_token": access_token, "token_type": self.token_type}
        if lifetime is not None:
            answer["expires_in"] = str(int(lifetime)) if self.expires_in_as_string else lifetime
        if scope is not None:
            answer["scope"] = scope
        return answer

    def _check_bearer(
        self, authorization: str | None, thumbprint: str | None = None
    ) -> IssuedToken | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self._lock:
            issued = self._tokens.get(authorization[len("Bearer ") :])
        if issued is None:
            return None
        if issued.expires_at is not None and time.monotonic() >= issued.expires_at:
            return None
        if issued.cert_thumbprint is not None and issued.cert_thumbprint != thumbprint:
            return None  # a certificate-bound token presented without its certificate
        return issued


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many threads connect at once in the tests

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (timeouts, refused bodies) are part of the tests."""


class _Handler(BaseHTTPRequestHandler):
    oauth: OAuthTestServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        hdrs = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        hdrs.update(headers or {})
        self._send(status, json.dumps(payload).encode(), hdrs)

    def _route(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if path == "/token" or (self.oauth.catch_all and path.endswith("/token")):
            self._token(body)
        elif path == "/resource" or path.startswith("/resource/"):
            self._resource(body)
        elif path == "/redirect":
            self._redirect()
        elif self.oauth.catch_all and "/.well-known/" in path:
            self._send_json(200, self._virtual_metadata(path))
        elif path in self._metadata_paths():
            self._send_json(200, self.oauth.metadata_document())
        elif path == "/unauthorized":
            self._send_json(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
        elif self.oauth.catch_all:
            self._resource(body)
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _route

    def _virtual_metadata(self, path: str) -> dict[str, Any]:
        """Metadata for whatever issuer the Host header and well-known path name."""
        before, _, after = path.partition("/.well-known/")
        issuer_path = before if before else "/" + after.partition("/")[2]
        issuer = f"https://{self.headers.get('Host', 'localhost')}{issuer_path.rstrip('/')}"
        document = self.oauth.metadata_document()
        document.update(issuer=issuer, token_endpoint=f"{issuer}/token")
        return document

    def _metadata_paths(self) -> tuple[str, ...]:
        style, issuer_path = self.oauth.metadata_style, self.oauth.issuer_path
        if style == "rfc8414":
            return ("/.well-known/oauth-authorization-server" + issuer_path,)
        if style == "oidc":
            return (issuer_path + "/.well-known/openid-configuration",)
        return ()

    # -- token endpoint ---------------------------------------------------------------

    def _token(self, body: bytes) -> None:
        canned = self.oauth._next_canned()
        if canned is not None:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            self.oauth.token_log.append(
                TokenRequestRecord(form, None, None, dict(self.headers.items())))
            if canned.delay:
                time.sleep(canned.delay)
            self._send(canned.status, canned.body + self._echo(body) if canned.echo
                       else canned.body, canned.headers)
            return
        try:
            if self.command != "POST":
                raise OAuthFailure(400, "invalid_request", "the token endpoint takes POST")
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            record = TokenRequestRecord(form, None, None, dict(self.headers.items()))
            try:
                client_id, method = self._authenticate_client(form)
            except OAuthFailure:  # refused requests are logged too, with no client_id
                self.oauth.token_log.append(record)
                raise
            self.oauth.token_log.append(replace(record, client_id=client_id, auth_method=method))
            if form.get("grant_type") != ["client_credentials"]:
                raise OAuthFailure(400, "unsupported_grant_type", "only client_credentials")
            bound = self._peer_thumbprint() if method == "tls_client_auth" else None
            self._send_json(200, self.oauth._issue(client_id, form, bound))
        except OAuthFailure as failure:
            headers = {"WWW-Authenticate": 'Basic realm="token"'} if failure.basic else {}
            self._send_json(
                failure.status,
                {"error": failure.error, "error_description": failure.description},
                headers,
            )

    def _echo(self, body: bytes) -> bytes:
        authorization = self.headers.get("Authorization", "")
        decoded = b""
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:] + "==", validate=False)
        return b"\n".join([b"", body, authorization.encode("latin-1"), decoded])

    def _peer_thumbprint(self) -> str | None:
        if not isinstance(self.connection, ssl.SSLSocket):
            return None
        der = self.connection.getpeercert(binary_form=True)
        return hashlib.sha256(der).hexdigest() if der else None

    def _authenticate_client(self, form: Mapping[str, list[str]]) -> tuple[str, str]:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        as_seen = f"{scheme}://{self.headers.get('Host', '')}{urlsplit(self.path).path}"
        return authenticate_client(
            self.oauth.registry, self.headers.get("Authorization", ""), form, peer,
            audiences=(self.oauth.token_url, self.oauth.issuer, as_seen),
        )

    # -- protected resource -----------------------------------------------------------

    def _resource(self, body: bytes) -> None:
        with self.oauth._lock:
            self.oauth.resource_requests += 1
        issued = self.oauth._check_bearer(self.headers.get("Authorization"),
                                          self._peer_thumbprint())
        if issued is None:
            with self.oauth._lock:
                self.oauth.resource_rejections += 1
            headers = {"WWW-Authenticate": 'Bearer realm="resource", error="invalid_token"'}
            if urlsplit(self.path).path.endswith("/cookie"):
                headers["Set-Cookie"] = "rs_session=from-401; Path=/"
            self._send_json(401, {"error": "invalid_token"}, headers)
            return
        self._send_json(200, {
            "method": self.command,
            "path": self.path,
            "client_id": issued.client_id,
            "scope": issued.scope,
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "cookie": self.headers.get("Cookie"),
        })

    def _redirect(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        status = int(query.get("status", "302"))
        self._send(status, b"", {"Location": query.get("to", "/")})
