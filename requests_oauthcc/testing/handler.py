"""The local server's HTTP side: reading requests, routing, the token endpoint's flow and
the resource's answers. What is decided (client authentication, DPoP proofs, token
checks) lives in clients.py, dpop.py and resource.py; the state in server.py."""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from .clients import Authenticated, OAuthFailure, authenticate_client
from .dpop import CheckedProof, DPoPError
from .records import TokenRequestRecord
from .resource import Refusal, ResourceRequest, authorize, dpop_nonce_header
from .serving import JsonHandler

if TYPE_CHECKING:
    from .server import OAuthTestServer


class Handler(JsonHandler):
    oauth: OAuthTestServer

    def _as_addressed(self) -> str:
        """The request's URL as the client addressed it: scheme, Host header, path."""
        parts = urlsplit(self.path)
        if parts.scheme and parts.netloc:
            return self.path  # absolute-form, as through a proxy
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        return f"{scheme}://{self.headers.get('Host', '')}{self.path}"

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
        if self.oauth.token_delay:
            time.sleep(self.oauth.token_delay)
        proof: CheckedProof | None = None
        try:
            if self.command != "POST":
                raise OAuthFailure(400, "invalid_request", "the token endpoint takes POST")
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            record = TokenRequestRecord(form, None, None, dict(self.headers.items()))
            try:  # DPoP first: a nonce retry must not burn a client assertion's jti
                proof = self._token_proof()
                client = self._authenticate_client(form)
            except OAuthFailure:  # refused requests are logged too, with no client_id
                self.oauth.token_log.append(record)
                raise
            client_id, method = client.client_id, client.method
            self.oauth.token_log.append(replace(record, client_id=client_id, auth_method=method,
                                                credential=client.credential))
            if form.get("grant_type") != ["client_credentials"]:
                raise OAuthFailure(400, "unsupported_grant_type", "only client_credentials")
            bound = self._peer_thumbprint() if method == "tls_client_auth" else None
            answer = self.oauth._issue(client_id, form, bound,
                                       jkt=proof.thumbprint if proof else None)
            if proof is not None:
                self.oauth._record_dpop("token", proof)
            self._send_json(200, answer, dpop_nonce_header(self.oauth, "token", proof))
        except OAuthFailure as failure:
            headers = {"WWW-Authenticate": 'Basic realm="token"'} if failure.basic else {}
            headers.update(dpop_nonce_header(self.oauth, "token", proof,
                                             force=failure.error == "use_dpop_nonce"))
            self._send_json(
                failure.status,
                {"error": failure.error, "error_description": failure.description},
                headers,
            )

    def _token_proof(self) -> CheckedProof | None:
        """The token request's DPoP proof (RFC 9449 §5), checked; ``None`` without one."""
        proofs = self.headers.get_all("DPoP") or []
        if not self.oauth.dpop:
            return None  # a server without DPoP support ignores the header
        if not proofs:
            if self.oauth.dpop_required:
                raise OAuthFailure(400, "invalid_dpop_proof",
                                   "the token request does not contain the DPoP header")
            return None
        url = self._as_addressed()
        try:
            return self.oauth.token_dpop.check(proofs, method="POST", url=url)
        except DPoPError as error:
            raise OAuthFailure(400, error.error, error.description) from None

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

    def _authenticate_client(self, form: Mapping[str, list[str]]) -> Authenticated:
        connection, scheme = self.connection, "http"
        peer: dict[str, Any] | None = None
        der: bytes | None = None
        if isinstance(connection, ssl.SSLSocket):
            peer, der, scheme = connection.getpeercert(), connection.getpeercert(True), "https"
        as_seen = f"{scheme}://{self.headers.get('Host', '')}{urlsplit(self.path).path}"
        return authenticate_client(
            self.oauth.registry, self.headers.get("Authorization", ""), form, peer,
            audiences=(self.oauth.token_url, self.oauth.issuer, as_seen), peer_der=der,
        )

    # -- protected resource -----------------------------------------------------------

    def _resource(self, body: bytes) -> None:
        with self.oauth._lock:
            self.oauth.resource_requests += 1
        proofs = self.headers.get_all("DPoP") or []
        decision = authorize(self.oauth, ResourceRequest(
            method=self.command, url=self._as_addressed(),
            authorization=self.headers.get("Authorization"), proofs=proofs,
            peer_thumbprint=self._peer_thumbprint(),
        ))
        if isinstance(decision, Refusal):
            with self.oauth._lock:
                self.oauth.resource_rejections += 1
            headers = dict(decision.headers)
            if urlsplit(self.path).path.endswith("/cookie"):
                headers["Set-Cookie"] = "rs_session=from-401; Path=/"
            self._send_json(401, {"error": decision.error}, headers)
            return
        issued, proof = decision
        headers = dpop_nonce_header(self.oauth, "resource", proof) if proof else {}
        self._send_json(200, {
            "method": self.command,
            "path": self.path,
            "client_id": issued.client_id,
            "scope": issued.scope,
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "cookie": self.headers.get("Cookie"),
            "dpop_jkt": proof.thumbprint if proof else None,
        }, headers)

    def _redirect(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        status = int(query.get("status", "302"))
        self._send(status, b"", {"Location": query.get("to", "/")})
