"""The values the local server keeps and hands to tests: canned answers, token request
records, issued tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CannedResponse", "IssuedToken", "TokenRequestRecord"]


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
    (also when the request got a canned answer from :meth:`OAuthTestServer.queue_response`,
    or its DPoP proof was refused before the client was authenticated). A client
    authenticated with a platform-issued assertion (a federated identity) is recorded as
    ``private_key_jwt``.

    ``credential``: which credential authenticated the client, as a short non-secret
    fingerprint (``secret:...``, ``key:...``, ``assertion:...`` or ``cert:...``), ``None``
    when none did; compare it with
    :func:`~requests_oauthcc.testing.credential_fingerprint` of the credential you expect
    (after a rotation: the new one).
    """

    form: Mapping[str, list[str]]
    client_id: str | None
    auth_method: str | None
    headers: Mapping[str, str]
    credential: str | None = None


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
    jkt: str | None = None
    """RFC 7638 thumbprint of the DPoP key the token is bound to (RFC 9449 §6), if any: the
    resource then wants ``Authorization: DPoP`` and a proof signed by that key."""
