"""Authlib's authorization server (Flask integration) with the client credentials grant.

Usage: ``python3 authlib_server.py CONFIG.json``. The config holds ``token_ttl`` (seconds)
and ``clients``, each ``{"client_id", "token_endpoint_auth_method", "client_secret"?,
"jwks"?}`` with the method one of client_secret_basic, client_secret_post,
client_secret_jwt (HS256 keyed with the secret) or private_key_jwt (keys in ``jwks``).
Every client may ask for the scopes ``read`` and ``write``.

It binds 127.0.0.1 on a free port, serves each request in its own thread and prints one
JSON line, ``{"base_url": ...}``, once it accepts connections. Endpoints:

- ``POST /oauth/token``: client credentials grant (RFC 6749 §4.4);
- ``POST /oauth/revoke``: Authlib's RFC 7009 revocation endpoint, for the token's owner;
- ``GET /api/data``: Authlib's ResourceProtector with a bearer token validator; answers
  ``{"client_id", "scope"}``, or Authlib's own error for a bad token;
- ``GET /_stats``: ``{"token_requests": N}``, every request to the token endpoint counted;
- ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata.

Storage is in memory. Nothing here logs a secret or a token.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from flask import Flask, Response, jsonify
from flask import request as flask_request
from joserfc.jwk import KeySet, OctKey
from werkzeug.serving import WSGIRequestHandler, make_server

SCOPES = ("read", "write")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
JWT_METHODS = ("client_secret_jwt", "private_key_jwt")
# Authlib verifies both RFC 7523 methods with one function; which key it checks the
# signature with depends on the client (see ClientAssertion.resolve_client_public_key).
ASSERTION = JWTBearerClientAssertion.CLIENT_AUTH_METHOD  # "client_assertion_jwt"
AUTH_METHODS = [*SECRET_METHODS, ASSERTION]


@dataclass(frozen=True)
class Client:
    """A registered client, as Authlib's ``ClientMixin`` describes it."""

    client_id: str
    auth_method: str
    secret: str | None = field(default=None, repr=False)
    assertion_key: KeySet | OctKey | None = field(default=None, repr=False)
    """What checks its RFC 7523 assertions: the registered public keys (private_key_jwt)
    or the secret (client_secret_jwt)."""

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes (the server already refused unknown ones); none if none."""
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and hmac.compare_digest(
            self.secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Only the method the client was registered with, at every endpoint."""
        if method == ASSERTION:
            return self.auth_method in JWT_METHODS
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class Token:
    """An issued access token, as Authlib's ``TokenMixin`` describes it."""

    client_id: str
    scope: str
    expires_in: int
    issued_at: float = field(default_factory=time.monotonic)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.monotonic() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked


class Store:
    """Clients, tokens, used assertion ids and the request count, behind one lock."""

    def __init__(self, clients: list[Client]) -> None:
        self._lock = threading.Lock()
        self._clients = {client.client_id: client for client in clients}
        self._tokens: dict[str, Token] = {}
        self._jti: dict[tuple[str, str], float] = {}  # (client, jti) -> when it may go
        self.token_requests = 0

    def count_token_request(self) -> None:
        with self._lock:
            self.token_requests += 1

    def query_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def save_token(self, token: Mapping[str, Any], request: Any) -> None:
        with self._lock:
            self._tokens[token["access_token"]] = Token(
                client_id=request.client.client_id, scope=token.get("scope", ""),
                expires_in=int(token["expires_in"]))

    def token(self, access_token: str) -> Token | None:
        with self._lock:
            return self._tokens.get(access_token)

    def revoke(self, token: Token) -> None:
        with self._lock:
            token.revoked = True

    def first_use_of(self, client_id: str, jti: str, until: float) -> bool:
        """True the first time ``jti`` is seen for this client (remembered ``until``)."""
        now = time.time()
        with self._lock:
            self._jti = {key: end for key, end in self._jti.items() if end > now}
            if (client_id, jti) in self._jti:
                return False
            self._jti[(client_id, jti)] = until
            return True


def client_from(entry: Mapping[str, Any]) -> Client:
    """A client from its config entry; its keys are read now, so a bad one fails at start."""
    method, secret = entry["token_endpoint_auth_method"], entry.get("client_secret")
    key: KeySet | OctKey | None = None
    if method == "private_key_jwt":
        key = KeySet.import_key_set(entry["jwks"])
    elif method == "client_secret_jwt":
        key = OctKey.import_key(entry["client_secret"])
    return Client(client_id=entry["client_id"], auth_method=method, secret=secret,
                  assertion_key=key)


def build_app(config: Mapping[str, Any]) -> tuple[Flask, list[str]]:
    """The Flask app, and a one-item list to put the base URL in once bound (the issuer
    and the assertion audiences are read from it per request)."""
    base: list[str] = []
    store = Store([client_from(entry) for entry in config["clients"]])
    app = Flask(__name__)
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": int(config["token_ttl"])}
    app.config["OAUTH2_SCOPES_SUPPORTED"] = list(SCOPES)
    server = AuthorizationServer(app, query_client=store.query_client,
                                 save_token=store.save_token)

    class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    class ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
        """RFC 7523 §2.2 client authentication: aud must name this server."""

        def get_audiences(self) -> list[str]:
            return [f"{base[0]}/oauth/token", base[0]]

        def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
            return store.first_use_of(claims["sub"], jti, float(claims["exp"]) + self.leeway)

        def resolve_client_public_key(self, client: Client) -> KeySet | OctKey:
            if client.assertion_key is None:
                raise InvalidClientError(description="The client has no assertion key.")
            return client.assertion_key

    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS = AUTH_METHODS

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            return None if token_type_hint == "refresh_token" else store.token(token_string)

        def revoke_token(self, token: Token, request: Any) -> None:
            store.revoke(token)

    class Bearer(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Token | None:
            return store.token(token_string)

    server.register_grant(ClientCredentials)
    server.register_client_auth_method(ASSERTION, ClientAssertion())
    server.register_endpoint(Revocation)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(Bearer())

    @app.before_request
    def count_token_requests() -> None:
        if flask_request.path == "/oauth/token":
            store.count_token_request()

    @app.post("/oauth/token")
    def issue_token() -> Response:
        response: Response = server.create_token_response()
        return response

    @app.post("/oauth/revoke")
    def revoke_token() -> Response:
        response: Response = server.create_endpoint_response(Revocation.ENDPOINT_NAME)
        return response

    @app.get("/api/data")
    def api_data() -> Response:
        with require_oauth.acquire() as token:
            return jsonify(client_id=token.client_id, scope=token.scope)

    @app.get("/_stats")
    def stats() -> Response:
        return jsonify(token_requests=store.token_requests)

    @app.get("/.well-known/oauth-authorization-server")
    def metadata() -> Response:
        return jsonify(server_metadata(base[0]))

    return app, base


def server_metadata(base_url: str) -> dict[str, Any]:
    """RFC 8414 metadata, checked by Authlib's own validators but one: without an
    authorization endpoint no response type is supported, an empty list Authlib refuses."""
    methods = [*SECRET_METHODS, *JWT_METHODS]
    algs = ["HS256", "RS256", "ES256"]
    document: dict[str, Any] = {
        "issuer": base_url,
        "token_endpoint": f"{base_url}/oauth/token",
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "scopes_supported": list(SCOPES),
        "revocation_endpoint": f"{base_url}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
    }
    checked = AuthorizationServerMetadata(document)
    for key in checked.REGISTRY_KEYS:
        if key != "response_types_supported":
            object.__getattribute__(checked, f"validate_{key}")()
    return document


class QuietHandler(WSGIRequestHandler):
    """No line per request: the log would be noise, and paths could carry tokens."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def main(argv: list[str]) -> None:
    with open(argv[1], encoding="utf-8") as file:
        config = json.load(file)
    app, base = build_app(config)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    base.append(f"http://127.0.0.1:{server.server_port}")
    server_metadata(base[0])  # an invalid document fails at start, not at the first request
    print(json.dumps({"base_url": base[0]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
