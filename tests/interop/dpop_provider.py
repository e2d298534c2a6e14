"""oidc-provider with DPoP on, and the DPoP resource in front of it (dpop_resource.py), for
test_dpop_oidc_provider.py.

:func:`running_dpop_provider` starts server.mjs with ``config.dpop`` (proofs checked at the
token endpoint, tokens bound to the proof's key, nonces required or not) and clients that
must use DPoP (``dpop_bound_access_tokens``), one per client authentication method; then
a :class:`~tests.interop.dpop_resource.DPoPResource` accepting the same proof algorithms
and requiring nonces the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .conftest import _client, _config, _keys, _start
from .dpop_resource import DPoPResource
from .servers import Client, InteropServer, stop_process

DPOP_ALGS = ("ES256", "ES384", "PS256", "RS256", "EdDSA")
"""What the provider accepts unless told otherwise (server.mjs's DPOP_ALGS)."""
JWT_RESOURCE = "https://api.example.test/jwt"
OPAQUE_RESOURCE = "https://api.example.test/opaque"
TOKEN_TTL = 60
"""Seconds a token lives: no test here lasts long enough to see one refreshed early."""

_HMAC_SECRET = "dpop-hmac-secret-long-enough-for-hs256-xxxxxxxxxxxx"


@dataclass(frozen=True)
class DPoPInterop:
    """A running DPoP provider and its resource.

    ``server``: the provider as the interop helpers see it (``auth_for``, ``call``); its
    ``api_url`` is the resource's ``/api/data``, its ``revoke`` revokes a token of the
    ``post`` client. ``resource``: the resource server itself (what it saw).
    ``require_nonce``: whether both require nonces. ``algs``: the proof algorithms both
    accept (the provider lists them in ``dpop_signing_alg_values_supported``).
    """

    server: InteropServer
    resource: DPoPResource
    require_nonce: bool
    algs: tuple[str, ...]

    @property
    def issuer(self) -> str:
        assert self.server.issuer is not None
        return self.server.issuer

    def token_requests(self) -> int:
        """Token requests the provider has received (its ``/_stats``)."""
        return self.server.token_requests()


def _clients(keys: dict[str, Any]) -> tuple[dict[str, Client], list[dict[str, Any]]]:
    """The clients by role, and their registrations: every one must use DPoP."""
    clients = {
        "basic": Client("dpop-basic", "client_secret_basic", "dpop-basic-secret"),
        "post": Client("dpop-post", "client_secret_post", "dpop-post-secret"),
        "client_secret_jwt": Client("dpop-hmac", "client_secret_jwt", _HMAC_SECRET),
        "private_key_jwt": Client("dpop-rsa", "private_key_jwt", options={
            "private_key": keys["rsa_pem"], "private_key_id": "rsa-1"}),
    }
    registered = [
        _client(c.client_id, c.auth_method, dpop_bound_access_tokens=True,
                **({"client_secret": c.client_secret} if c.client_secret else
                   {"jwks": {"keys": [keys["rsa_public"]]}}))
        for c in clients.values()
    ]
    return clients, registered


@contextmanager
def running_dpop_provider(
    directory: Path, *, require_nonce: bool, algs: Sequence[str] = DPOP_ALGS
) -> Iterator[DPoPInterop]:
    """oidc-provider with DPoP (nonces required or not, ``algs`` accepted) and its
    resource, stopped on exit."""
    keys = _keys()
    clients, registered = _clients(keys)
    config = _config(keys, registered)
    config["token_ttl"] = TOKEN_TTL
    config["dpop"] = {"require_nonce": require_nonce, "algs": list(algs)}
    rs = config["resource_server"]
    process, issuer = _start(config, directory)
    try:
        with DPoPResource(
            issuer, signing_jwk=keys["signing"], jwt_audience=JWT_RESOURCE,
            opaque_audience=OPAQUE_RESOURCE,
            introspection_client=(rs["client_id"], rs["client_secret"]),
            require_nonce=require_nonce, algs=algs,
        ) as resource:

            def token_requests() -> int:
                count: int = requests.get(f"{issuer}/_stats", timeout=5).json()[
                    "token_requests"]
                return count

            def revoke(access_token: str) -> None:
                post = clients["post"]
                response = requests.post(f"{issuer}/token/revocation", timeout=10, data={
                    "token": access_token, "client_id": post.client_id,
                    "client_secret": post.client_secret})
                assert response.status_code == 200, response.status_code

            server = InteropServer(
                name="oidc-provider (DPoP)", token_url=f"{issuer}/token",
                api_url=resource.url("/api/data"), clients=clients,
                token_requests=token_requests, revoke=revoke, issuer=issuer,
                token_ttl=TOKEN_TTL)
            yield DPoPInterop(server=server, resource=resource, require_nonce=require_nonce,
                              algs=tuple(algs))
    finally:
        stop_process(process)
