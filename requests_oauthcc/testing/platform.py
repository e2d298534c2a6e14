"""A fake platform that hands out JWTs: an OpenID Connect issuer on 127.0.0.1 standing in
for a Kubernetes cluster's service-account issuer, Microsoft Entra ID workload identity or
GitHub Actions, so that clients sending platform tokens as client assertions (RFC 7521
§4.2, RFC 7523 §2.2) can be tested end to end::

    with FakeIssuer() as issuer, OAuthTestServer(federated_clients={
        "my-client": FederatedIdentity(issuer.url, "system:serviceaccount:ns:app"),
    }) as server:
        token = issuer.project(tmp_path, "system:serviceaccount:ns:app", server.token_url)
        ...  # the client reads token.path; token.rotate() writes the next token

Served (plain http, GET):

- ``{url}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4): ``issuer``
  and ``jwks_uri`` among the required fields;
- ``{url}/.well-known/jwks``: the published public keys (``kid``, ``alg``, ``use``);
- the GitHub Actions ID-token endpoint at :attr:`FakeIssuer.github_request_url` (see
  :meth:`FakeIssuer.environ`).

Tokens are signed with PyJWT (the ``[jwt]`` extra); the server part is stdlib only.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .projected import ProjectedToken
from .serving import JsonHandler, LoopbackService
from .signing import SigningKey

__all__ = ["FakeIssuer", "ProjectedToken"]

GITHUB_REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"


class FakeIssuer(LoopbackService):
    """An OpenID Connect issuer of platform tokens on 127.0.0.1 (see the module docstring);
    ``with FakeIssuer() as issuer:`` or :meth:`start` / :meth:`stop`.

    ``alg``: the signing algorithm (``RS256``, ``ES256``, ... see
    :data:`~requests_oauthcc.testing.signing.SIGNING_ALGS`). ``issuer_path``: a path for
    the issuer identifier (``http://127.0.0.1:PORT/tenant/v2.0``).
    ``github_repository``, ``github_ref``: what GitHub Actions tokens say (``sub`` is
    ``repo:<repository>:ref:<ref>``; the default ``aud`` the owner's URL
    ``https://github.com/<owner>``, as GitHub sets it). ``github_lifetime``: their
    lifetime in seconds.

    Records: :attr:`github_requests` (every request to the GitHub endpoint, refused ones
    included), :attr:`discovery_requests`, :attr:`jwks_requests`. The ``repr`` holds no
    key and no request token.
    """

    _thread_name = "fake-issuer"

    def __init__(
        self,
        *,
        alg: str = "RS256",
        issuer_path: str = "",
        github_repository: str = "octo-org/octo-repo",
        github_ref: str = "refs/heads/main",
        github_lifetime: float = 300.0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host)
        self.issuer_path = "/" + issuer_path.strip("/") if issuer_path.strip("/") else ""
        self.github_repository = github_repository
        self.github_ref = github_ref
        self.github_lifetime = github_lifetime
        self.github_request_token = secrets.token_urlsafe(32)
        """The bearer token the GitHub endpoint wants (``ACTIONS_ID_TOKEN_REQUEST_TOKEN``)."""
        self._github_path = f"/idtoken/{uuid.uuid4()}/{uuid.uuid4()}"
        self._lock = threading.Lock()
        self._signing = SigningKey.generate(alg)
        self._published: list[SigningKey] = [self._signing]
        self.github_requests = 0
        self.discovery_requests = 0
        self.jwks_requests = 0

    def __repr__(self) -> str:
        state = self.url if self._httpd is not None else "not started"
        return f"FakeIssuer({state}, alg={self._signing.alg!r}, kid={self.kid!r})"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class BoundHandler(_IssuerHandler):
            platform = issuer

        return BoundHandler

    # -- the issuer and its keys ------------------------------------------------------

    @property
    def url(self) -> str:
        """The issuer identifier: the tokens' ``iss``, where discovery starts."""
        return self.base_url + self.issuer_path

    @property
    def jwks_uri(self) -> str:
        return self.url + "/.well-known/jwks"

    @property
    def kid(self) -> str:
        """The current signing key's ``kid``."""
        return self._signing.kid

    @property
    def signing_key(self) -> SigningKey:
        """The current signing key (its private half is kept out of ``repr``)."""
        return self._signing

    def discovery_document(self) -> dict[str, Any]:
        """The OpenID Connect Discovery document, as served."""
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted(
                {key.alg for key in self._published}),
        }

    def jwks(self) -> dict[str, Any]:
        """The published JWK Set: the current public key and, unless a rotation dropped
        them, the previous ones."""
        with self._lock:
            return {"keys": [dict(key.jwk) for key in self._published]}

    def rotate_key(self, *, alg: str | None = None, keep_old: bool = True) -> str:
        """Sign with a new key from now on (of ``alg``, or the current algorithm); returns
        its ``kid``. With ``keep_old`` the previous public keys stay published (tokens
        they signed still verify, as real issuers keep them for a while); without, only
        the new key is published."""
        key = SigningKey.generate(alg or self._signing.alg)
        with self._lock:
            self._published = [*self._published, key] if keep_old else [key]
            self._signing = key
        return key.kid

    def mint(
        self,
        subject: str,
        audience: str | Sequence[str],
        *,
        lifetime: float = 600.0,
        **claims: Any,
    ) -> str:
        """A token of this issuer, signed with the current key (``kid`` in its header):
        ``iss`` (:attr:`url`), ``sub``, ``aud``, ``iat`` and ``nbf`` (now), ``exp`` (now
        plus ``lifetime`` seconds; negative for an expired token), a random ``jti``.
        ``claims`` are added and replace these (``iss="..."``, ``exp=...``)."""
        now = time.time()
        payload: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + lifetime),
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        return self._signing.sign(payload)

    # -- Kubernetes / Entra ID: a projected token file ---------------------------------

    def project(
        self,
        directory: str | os.PathLike[str],
        subject: str,
        audience: str | Sequence[str],
        *,
        lifetime: float = 600.0,
        filename: str = "token",
    ) -> ProjectedToken:
        """A token file in ``directory`` written as the kubelet projects one (see
        :class:`ProjectedToken`); each :meth:`ProjectedToken.rotate` mints a new token for
        ``subject`` and ``audience`` valid ``lifetime`` seconds. ``filename``: ``token``
        (Kubernetes) or ``azure-identity-token`` (Entra ID workload identity)."""
        return ProjectedToken(
            directory, lambda: self.mint(subject, audience, lifetime=lifetime),
            filename=filename,
        )

    # -- GitHub Actions ---------------------------------------------------------------

    @property
    def github_request_url(self) -> str:
        """The ID-token endpoint, with ``?api-version=2.0`` as in
        ``ACTIONS_ID_TOKEN_REQUEST_URL`` (clients append ``&audience=...``)."""
        return f"{self.base_url}{self._github_path}?api-version=2.0"

    @property
    def github_subject(self) -> str:
        return f"repo:{self.github_repository}:ref:{self.github_ref}"

    @property
    def github_default_audience(self) -> str:
        """The ``aud`` of a token asked for without ``audience``: the owner's URL."""
        return "https://github.com/" + self.github_repository.partition("/")[0]

    def environ(self) -> dict[str, str]:
        """``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``, as a
        GitHub Actions job with ``permissions: id-token: write`` has them."""
        return {GITHUB_REQUEST_URL: self.github_request_url,
                GITHUB_REQUEST_TOKEN: self.github_request_token}

    def github_token(self, audience: str | None = None) -> str:
        """A token as the GitHub endpoint gives it for ``audience`` (default
        :attr:`github_default_audience`), with GitHub's claims (``repository``, ``ref``,
        ``sha``, ``workflow``, ``run_id``...), valid :attr:`github_lifetime` seconds."""
        owner = self.github_repository.partition("/")[0]
        return self.mint(
            self.github_subject, audience or self.github_default_audience,
            lifetime=self.github_lifetime,
            ref=self.github_ref, ref_type="branch", sha=secrets.token_hex(20),
            repository=self.github_repository, repository_owner=owner,
            actor=owner, event_name="push", workflow="CI", run_id="1", run_number="1",
            run_attempt="1", runner_environment="github-hosted",
            job_workflow_ref=f"{self.github_repository}/.github/workflows/ci.yml@"
                             f"{self.github_ref}",
        )

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)


class _IssuerHandler(JsonHandler):
    platform: FakeIssuer

    def do_GET(self) -> None:
        self._read_body()
        parts = urlsplit(self.path)
        issuer = self.platform
        if parts.path == issuer.issuer_path + "/.well-known/openid-configuration":
            issuer._count("discovery_requests")
            self._send_json(200, issuer.discovery_document(), {"Cache-Control": "max-age=60"})
        elif parts.path == issuer.issuer_path + "/.well-known/jwks":
            issuer._count("jwks_requests")
            self._send_json(200, issuer.jwks(), {"Cache-Control": "max-age=60"})
        elif parts.path == issuer._github_path:
            issuer._count("github_requests")
            self._github(parse_qs(parts.query, keep_blank_values=True))
        else:
            self._send_json(404, {"message": "Not Found"})

    def _github(self, query: dict[str, list[str]]) -> None:
        """GitHub's ID-token endpoint: ``Authorization: Bearer <request token>`` (any
        case of the scheme), ``api-version=2.0``, optional ``audience``; answers
        ``{"count": <len(value)>, "value": <JWT>}``."""
        scheme, _, credentials = self.headers.get("Authorization", "").partition(" ")
        expected = self.platform.github_request_token.encode()
        if scheme.lower() != "bearer" or not secrets.compare_digest(
                credentials.strip().encode(), expected):
            self._send_json(401, {"message": "Bad credentials"})
            return
        if query.get("api-version") != ["2.0"]:
            self._send_json(400, {"message": "api-version=2.0 is required"})
            return
        audience = query.get("audience", [""])[-1] or None
        value = self.platform.github_token(audience)
        self._send_json(200, {"count": len(value), "value": value})
