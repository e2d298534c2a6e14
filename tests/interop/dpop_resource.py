"""A DPoP protected resource (RFC 9449 §7) in front of oidc-provider, for the DPoP interop
tests (test_dpop_oidc_provider.py).

:class:`DPoPResource` serves on 127.0.0.1, on a free port, one thread per request. For each
request it validates the access token first: a JWT access token by its signature (the
provider's signing key, from the test config), issuer and audience; an opaque one at the
provider's introspection endpoint (``active`` and audience). The token must be bound to a
key (``cnf.jkt``). Then the ``DPoP`` proof, with the testing kit's
:class:`~requests_oauthcc.testing.dpop.DPoPProofChecker`, for the exact method and URL of
the request, with the token's ``ath`` and its ``jkt``; with ``require_nonce``, the proof
must carry a nonce of this resource (§9). A failure is a 401 with
``WWW-Authenticate: DPoP error="...", algs="..."`` (``invalid_token``,
``invalid_dpop_proof``, or ``use_dpop_nonce`` with a ``DPoP-Nonce``).

Paths (any method):

- ``/api/<anything>``: 200 ``{"client_id", "scope", "format", "jkt", "method", "path"}``;
- ``/hop/<status>/<n>``: a ``<status>`` redirect (302, 303, 307) to ``/hop/<status>/<n-1>``,
  the last one to ``/api/landed``, each Location with a query;
- ``/away``: a 302 to ``/api/away`` of another origin, ``localhost`` instead of 127.0.0.1.

Every request is recorded (:class:`Seen`: what its proof said, read without checking it,
and the answer). :attr:`DPoPResource.nonce_forever` makes every answer a
``use_dpop_nonce`` 401 with a fresh nonce; :meth:`DPoPResource.accept_only` narrows the
proof algorithms accepted. Nothing here logs or answers a token or a proof.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from requests_oauthcc.testing.dpop import DPoPError, DPoPProofChecker

from ..loopback import LoopbackServer


@dataclass(frozen=True)
class Seen:
    """One request the resource received and what it answered.

    ``jti``, ``htm``, ``htu``, ``nonce``, ``ath`` and ``alg`` are what the request's proof
    said (``None`` without a readable proof), read before any check. ``scheme``: of its
    ``Authorization`` header. ``error``: the ``error`` of a 401. ``nonce_given``: the
    ``DPoP-Nonce`` answered, if any.
    """

    method: str
    path: str
    body: bytes
    scheme: str | None
    jti: str | None
    htm: str | None
    htu: str | None
    nonce: str | None
    ath: str | None
    alg: str | None
    status: int
    error: str | None
    nonce_given: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    error: str | None = None


def _peek(values: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JOSE header and the claims of the one proof in ``values``, unchecked; ``{}``
    each for what cannot be read."""
    if len(values) != 1:
        return {}, {}
    parts: list[dict[str, Any]] = []
    for part in values[0].split(".")[:2]:
        try:
            value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except ValueError:
            value = {}
        parts.append(value if isinstance(value, dict) else {})
    while len(parts) < 2:
        parts.append({})
    return parts[0], parts[1]


class DPoPResource(LoopbackServer):
    """The resource server; use as a context manager (it serves while inside).

    ``issuer``: the provider's; its introspection endpoint is ``{issuer}/token/introspection``,
    asked as ``introspection_client`` (id, secret; client_secret_basic). ``signing_jwk``: the
    provider's signing key (RS256; its private members are ignored). ``jwt_audience`` and
    ``opaque_audience``: the ``aud`` a JWT, and an introspected token, must have. ``algs``:
    the proof algorithms accepted and announced. ``checker``: the proof checker in use (its
    nonces, ``checker.nonce()``).
    """

    def __init__(
        self,
        issuer: str,
        *,
        signing_jwk: Mapping[str, Any],
        jwt_audience: str,
        opaque_audience: str,
        introspection_client: tuple[str, str],
        require_nonce: bool,
        algs: Sequence[str],
    ) -> None:
        self.issuer = issuer
        self.jwt_audience, self.opaque_audience = jwt_audience, opaque_audience
        self.checker = self._checker = DPoPProofChecker(require_nonce=require_nonce,
                                                        algs=algs)
        self.nonce_forever = False
        public = {name: signing_jwk[name] for name in ("kty", "n", "e")}
        self._signing_key = jwt.PyJWK(public, algorithm="RS256")
        self._introspection_client = introspection_client
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        super().__init__(_handler(self))

    def url(self, path: str) -> str:
        """``path`` (starting with ``/``) at this resource."""
        return self.base_url + path

    # -- what it saw ------------------------------------------------------------------

    @property
    def seen(self) -> list[Seen]:
        """Every request received so far, in order of answer."""
        with self._lock:
            return list(self._seen)

    def requests_count(self) -> int:
        with self._lock:
            return len(self._seen)

    def rejections(self) -> Counter[str]:
        """How many 401s were answered, by ``error``."""
        with self._lock:
            return Counter(seen.error or "" for seen in self._seen if seen.status == 401)

    def reset(self) -> None:
        """Forget what was seen, and answer normally again."""
        with self._lock:
            self._seen.clear()
        self.nonce_forever = False
        self.checker = self._checker

    def accept_only(self, algs: Sequence[str]) -> None:
        """Accept (and announce) proofs signed with ``algs`` only, until :meth:`reset`."""
        self.checker = DPoPProofChecker(require_nonce=self._checker.require_nonce, algs=algs)

    # -- answering --------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> _Answer:
        """The answer to one request, recorded. ``headers``: the request's (an
        ``email.message.Message``: ``get_all`` gives every ``DPoP`` header)."""
        proofs: list[str] = headers.get_all("DPoP") or []
        jose, claims = _peek(proofs)
        authorization: str = headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        answer = self._answer(method, path, scheme, token, proofs)
        seen = Seen(
            method=method, path=path, body=body, scheme=scheme or None,
            jti=_text(claims.get("jti")), htm=_text(claims.get("htm")),
            htu=_text(claims.get("htu")), nonce=_text(claims.get("nonce")),
            ath=_text(claims.get("ath")), alg=_text(jose.get("alg")),
            status=answer.status, error=answer.error,
            nonce_given=answer.headers.get("DPoP-Nonce"),
        )
        with self._lock:
            self._seen.append(seen)
        return answer

    def _answer(self, method: str, path: str, scheme: str, token: str,
                proofs: Sequence[str]) -> _Answer:
        if self.nonce_forever:
            return self._refuse("use_dpop_nonce", "a fresh nonce, every time",
                                nonce=self.checker.rotate_nonce())
        if scheme.lower() != "dpop" or not token:
            return self._refuse("invalid_token", "a DPoP-bound access token is required")
        info = self._token_info(token)
        if info is None:
            return self._refuse("invalid_token", "the access token is not valid here")
        jkt = info["cnf"].get("jkt") if isinstance(info.get("cnf"), dict) else None
        if not isinstance(jkt, str):
            return self._refuse("invalid_token", "the access token is not DPoP-bound")
        try:
            self.checker.check(proofs, method=method, url=self.url(path), access_token=token,
                               bound_thumbprint=jkt)
        except DPoPError as error:
            nonce = self.checker.nonce() if error.error == "use_dpop_nonce" else None
            return self._refuse(error.error, error.description, nonce=nonce)
        return self._serve(method, path, {**info, "jkt": jkt})

    def _serve(self, method: str, path: str, info: Mapping[str, Any]) -> _Answer:
        headers = {"DPoP-Nonce": self.checker.nonce()} if self.checker.require_nonce else {}
        parts = urlsplit(path).path.split("/")
        if len(parts) == 4 and parts[1] == "hop" and parts[2] in ("302", "303", "307"):
            left = int(parts[3]) - 1
            target = f"/hop/{parts[2]}/{left}?left={left}" if left > 0 else "/api/landed?from=hop"
            return _Answer(int(parts[2]), {}, {**headers, "Location": target})
        if path == "/away":
            return _Answer(302, {}, {**headers,
                                     "Location": f"http://localhost:{self.port}/api/away"})
        body = {"client_id": info.get("client_id"), "scope": info.get("scope"),
                "format": info["format"], "jkt": info["jkt"], "method": method, "path": path}
        return _Answer(200, body, headers)

    def _refuse(self, error: str, description: str, nonce: str | None = None) -> _Answer:
        quoted = description.replace("\\", "\\\\").replace('"', '\\"')
        challenge = (f'DPoP error="{error}", error_description="{quoted}", '
                     f'algs="{" ".join(self.checker.algs)}"')
        headers = {"WWW-Authenticate": challenge}
        if nonce is not None:
            headers["DPoP-Nonce"] = nonce
        return _Answer(401, {"error": error}, headers, error=error)

    def _token_info(self, token: str) -> dict[str, Any] | None:
        """What the token is (``client_id``, ``scope``, ``format``, ``cnf``), or ``None``
        when it is not valid for this resource."""
        if token.count(".") == 2:
            try:
                claims = jwt.decode(token, self._signing_key, algorithms=["RS256"],
                                    issuer=self.issuer, audience=self.jwt_audience)
            except jwt.PyJWTError:
                return None
            return {"client_id": claims.get("client_id"), "scope": claims.get("scope"),
                    "format": "jwt", "cnf": claims.get("cnf")}
        info = self.introspect(token)
        if info.get("active") is not True or info.get("aud") != self.opaque_audience:
            return None
        return {"client_id": info.get("client_id"), "scope": info.get("scope"),
                "format": "opaque", "cnf": info.get("cnf")}

    def introspect(self, token: str) -> dict[str, Any]:
        """The provider's RFC 7662 answer about ``token``."""
        response = requests.post(f"{self.issuer}/token/introspection", data={"token": token},
                                 auth=self._introspection_client, timeout=10)
        response.raise_for_status()
        info: dict[str, Any] = response.json()
        return info


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _handler(resource: DPoPResource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body leave at once: no delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = resource.answer(self.command, self.path, self.headers, body)
            payload = json.dumps(answer.body).encode() if answer.body else b""
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler
