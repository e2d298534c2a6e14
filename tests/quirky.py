"""A loopback authorization server and API that behave like the real ones people run.

Each keyword of :class:`QuirkyServer` is one deviation seen in deployed servers (issue
#11): gateways that keep one token per client and count ``expires_in`` down, ``expires_in``
of ``0`` for tokens that do not expire, ``token_type`` spellings, servers that require
``client_id`` next to HTTP Basic, Basic credentials decoded without the form rules, APIs
answering 403 to a dead token, metadata at the issuer-suffix location. The server counts
what it serves, so tests can bound the token requests a client makes.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from .loopback import LoopbackServer


class QuirkyServer(LoopbackServer):
    """Token endpoint at ``/token``, API at ``/api``, metadata where ``metadata_at`` says.

    ``client_id``/``client_secret``: the one registered client (any method: Basic or form).
    ``lifetime``: seconds a token lives at the server (``None``: forever).
    ``expires_in``: what the answer says: ``"exact"`` (the lifetime), ``"zero"`` (always 0),
    ``"floor"``/``"ceil"`` (seconds left, rounded), or ``"none"`` (left out).
    ``one_token``: answer every token request with the client's live token, as long as it
    lives (gateways that keep one token per client).
    ``token_type``: as answered. ``basic``: how the Basic credentials are decoded:
    ``"form"`` (form rules, ``+`` is a space), ``"percent"`` (percent-decoding only, as
    Authlib) or ``"raw"`` (not decoded at all). ``require_client_id``: refuse Basic without
    ``client_id`` in the form too. ``reject_status``: the API's status for a dead token
    (401 with ``WWW-Authenticate``, or 403 without, as django-oauth-toolkit).
    ``issuer_path``/``metadata_at``: an issuer with a path, and its metadata at
    ``"suffix"`` (``{issuer}/.well-known/oauth-authorization-server``) or nowhere.
    ``api_accepts``: ``False`` for an API that refuses every token (wrong audience, say).
    ``token_delay``: seconds the token endpoint takes to answer.
    """

    def __init__(
        self,
        *,
        client_id: str = "quirky-client",
        client_secret: str = "quirky-secret",
        lifetime: float | None = 3600,
        expires_in: str = "exact",
        one_token: bool = False,
        token_type: str = "Bearer",
        basic: str = "form",
        require_client_id: bool = False,
        reject_status: int = 401,
        issuer_path: str = "",
        metadata_at: str | None = None,
        api_accepts: bool = True,
        token_delay: float = 0.0,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.lifetime, self.expires_in, self.one_token = lifetime, expires_in, one_token
        self.token_type, self.basic, self.require_client_id = token_type, basic, require_client_id
        self.reject_status = reject_status
        self.issuer_path, self.metadata_at = issuer_path, metadata_at
        self.api_accepts, self.token_delay = api_accepts, token_delay
        self.token_requests = 0
        self.api_requests = 0
        self.rejections = 0
        self.refusals: list[str] = []
        self.last_form: dict[str, list[str]] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry (time.monotonic)
        self._live: str | None = None
        self._lock = threading.Lock()
        super().__init__(_handler(self))

    @property
    def issuer(self) -> str:
        return self.base_url + self.issuer_path

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api"

    def revoke_all(self) -> None:
        """Every token issued so far is dead from now on."""
        with self._lock:
            self._tokens.clear()
            self._live = None

    # -- the handler's side ----------------------------------------------------------

    def token_answer(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        time.sleep(self.token_delay)
        with self._lock:
            self.token_requests += 1
            self.last_form = form
            refusal = self._authenticate(headers.get("Authorization", ""), form)
            if refusal:
                self.refusals.append(refusal)
                return 401, {"error": "invalid_client", "error_description": refusal}
            now = time.monotonic()
            token = self._live if self.one_token else None
            if token is None or self._tokens.get(token, math.inf) <= now:
                token = secrets.token_urlsafe(16)
                self._tokens[token] = math.inf if self.lifetime is None else now + self.lifetime
                self._live = token
            left = self._tokens[token] - now
        answer: dict[str, Any] = {"access_token": token, "token_type": self.token_type}
        if self.expires_in != "none" and math.isfinite(left):
            answer["expires_in"] = {
                "exact": self.lifetime, "zero": 0, "floor": math.floor(left),
                "ceil": math.ceil(left),
            }[self.expires_in]
        elif self.expires_in == "zero":
            answer["expires_in"] = 0
        return 200, answer

    def _authenticate(self, authorization: str, form: Mapping[str, list[str]]) -> str:
        """Why the client is refused, or ``""``."""
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode("utf-8").partition(":")
            decoders: dict[str, Callable[[str], str]] = {
                "form": unquote_plus, "percent": unquote, "raw": str}
            decode = decoders[self.basic]
            client_id, secret = decode(user), decode(password)
            if self.require_client_id and form.get("client_id") != [client_id]:
                return "client_id is required in the body"
        else:
            client_id = form.get("client_id", [""])[0]
            secret = form.get("client_secret", [""])[0]
        if (client_id, secret) != (self.client_id, self.client_secret):
            return "unknown client or wrong secret"
        return ""

    def api_answer(self, authorization: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.api_requests += 1
            token = authorization.removeprefix("Bearer ")
            alive = self.api_accepts and self._tokens.get(token, -math.inf) > time.monotonic()
            if not alive:
                self.rejections += 1
        if alive:
            return 200, {"ok": True}, {}
        if self.reject_status == 401:
            return 401, {"error": "invalid_token"}, {
                "WWW-Authenticate": 'Bearer error="invalid_token"'}
        return self.reject_status, {"detail": "forbidden"}, {}

    def metadata(self, path: str) -> dict[str, Any] | None:
        if self.metadata_at == "suffix" and path == (
                self.issuer_path + "/.well-known/oauth-authorization-server"):
            return {"issuer": self.issuer, "token_endpoint": self.token_url,
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"]}
        return None


def _handler(server: QuirkyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # head and body leave in one write: no delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: object, headers: Mapping[str, str] = {}) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/api":
                self._send(*server.api_answer(self.headers.get("Authorization", "")))
                return
            document = server.metadata(path)
            if document is None:
                self._send(404, {"error": "not found"})
            else:
                self._send(200, document)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b""
            while True:  # chunked (a generator's upload): size line, data, CRLF; 0 ends
                size = int(self.rfile.readline().split(b";")[0], 16)
                body += self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return body

        def do_POST(self) -> None:
            body = self._body()
            if urlsplit(self.path).path == "/token":
                self._send(*server.token_answer(dict(self.headers.items()), body))
            else:
                self.do_GET()

    return Handler
