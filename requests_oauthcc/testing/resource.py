"""The protected resource's decision: which token a request presents, and whether it may.

Bearer tokens per RFC 6750; DPoP-bound tokens per RFC 9449 §7 (``Authorization: DPoP``
plus a proof for this very request, its ``ath`` and the token's key) with §9 nonces. Kept
free of the HTTP plumbing: :func:`authorize` takes what the request said and returns the
token or the 401 to send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .dpop import CheckedProof, DPoPError
from .records import IssuedToken

if TYPE_CHECKING:
    from .server import OAuthTestServer

__all__ = ["Refusal", "ResourceRequest", "authorize", "dpop_nonce_header"]

BEARER_CHALLENGE = 'Bearer realm="resource", error="invalid_token"'


@dataclass(frozen=True)
class ResourceRequest:
    """What the resource looks at. ``url``: the request's URL as the client addressed it
    (scheme, Host header, path). ``proofs``: every ``DPoP`` header value."""

    method: str
    url: str
    authorization: str | None
    proofs: Sequence[str] = ()
    peer_thumbprint: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A 401: its error code and headers (``WWW-Authenticate``, maybe ``DPoP-Nonce``)."""

    error: str
    headers: Mapping[str, str] = field(default_factory=dict)


def dpop_nonce_header(
    server: OAuthTestServer, where: str, proof: CheckedProof | None, *, force: bool = False
) -> dict[str, str]:
    """``{"DPoP-Nonce": ...}`` when the client should learn the current nonce of ``where``
    ("token" or "resource"): always with ``force`` (a ``use_dpop_nonce`` error), else when
    nonces are on and the proof did not carry the current one (RFC 9449 §8.2, §9)."""
    checker = server.token_dpop if where == "token" else server.resource_dpop
    if force or (server.dpop_nonce and (proof is None or proof.nonce != checker.nonce())):
        return {"DPoP-Nonce": checker.nonce()}
    return {}


def authorize(
    server: OAuthTestServer, request: ResourceRequest
) -> tuple[IssuedToken, CheckedProof | None] | Refusal:
    """The live token (and the DPoP proof, for a bound token) the request presents, or the
    :class:`Refusal` to answer with.

    ``Authorization: Bearer`` works as RFC 6750 says, except for a DPoP-bound token (RFC 9449
    §7.2: no downgrade). ``Authorization: DPoP`` needs a bound token and a proof passing
    every §4.3 check for this method and URL, with ``ath`` and the token's key.
    """
    authorization = request.authorization or ""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "dpop" and credentials.strip():
        return _authorize_dpop(server, request, credentials.strip())
    issued = None
    if authorization.startswith("Bearer "):
        issued = server._live_token(authorization[len("Bearer "):], request.peer_thumbprint)
    if issued is not None and issued.jkt is not None:
        return _dpop_refusal(server, "invalid_token",
                             "a DPoP-bound access token was presented as a bearer token")
    if issued is None:
        challenge = BEARER_CHALLENGE
        if server.dpop_nonce or server.dpop_required:
            challenge += ", " + _dpop_challenge(server)
        return Refusal("invalid_token", {"WWW-Authenticate": challenge})
    return issued, None


def _authorize_dpop(
    server: OAuthTestServer, request: ResourceRequest, token: str
) -> tuple[IssuedToken, CheckedProof | None] | Refusal:
    issued = server._live_token(token, request.peer_thumbprint)
    if issued is None:
        return _dpop_refusal(server, "invalid_token", "the access token is unknown or expired")
    if issued.jkt is None:
        return _dpop_refusal(server, "invalid_token",
                             "the access token is not bound to a DPoP key")
    try:
        proof = server.resource_dpop.check(
            request.proofs, method=request.method, url=request.url,
            access_token=token, bound_thumbprint=issued.jkt,
        )
    except DPoPError as error:
        return _dpop_refusal(server, error.error, error.description)
    server._record_dpop("resource", proof)
    return issued, proof


def _dpop_challenge(server: OAuthTestServer, error: str = "", description: str = "") -> str:
    params = [f'error="{error}"', f'error_description="{description}"'] if error else []
    params.append(f'algs="{" ".join(server.dpop_algs)}"')
    return "DPoP " + ", ".join(params)


def _dpop_refusal(server: OAuthTestServer, error: str, description: str) -> Refusal:
    """A 401 with an RFC 9449 §7.1 challenge (and a nonce, §9, when one is wanted)."""
    headers = {"WWW-Authenticate": _dpop_challenge(server, error, description.replace('"', "'"))}
    headers.update(dpop_nonce_header(server, "resource", None,
                                     force=error == "use_dpop_nonce"))
    return Refusal(error, headers)
