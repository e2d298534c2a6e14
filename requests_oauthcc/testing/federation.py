"""Client assertions issued by a platform (workload identity federation), checked the way
Microsoft Entra ID and Keycloak check them.

A client registered with a :class:`FederatedIdentity` authenticates with a JWT its
platform issued (a Kubernetes service-account token, a GitHub Actions OIDC token...) sent
as ``client_assertion`` (RFC 7521 §4.2, RFC 7523 §2.2). The server discovers the issuer
(OpenID Connect Discovery 1.0 §4: ``{iss}/.well-known/openid-configuration``, whose
``issuer`` must be ``iss`` exactly), fetches its ``jwks_uri`` (cached per issuer, fetched
again once when an assertion names a ``kid`` not in the cached set: the issuer rotated
its key), and verifies the signature, ``iss``, ``sub``, ``aud`` and ``exp``. As with
real servers' caches, a key the issuer stopped publishing is trusted until the cached set
is replaced (when an assertion names a ``kid`` it does not hold). There is no ``jti``
replay check: a platform token is reused for many token requests until the platform
rotates it.

Stdlib only (urllib, no proxy) for the fetches; PyJWT verifies the signature.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .dpop import DEFAULT_ALGS
from .fingerprints import credential_fingerprint

__all__ = ["FederatedIdentity", "Federation", "FederationRefused"]

_MAX_DOCUMENT = 1024 * 1024  # bytes of a discovery document or JWKS read at most


@dataclass(frozen=True)
class FederatedIdentity:
    """A registered client's trust in one platform identity (Entra ID's "federated
    identity credential").

    ``issuer``: the ``iss`` of the platform's tokens, exactly as they carry it (its
    discovery document is at ``{issuer}/.well-known/openid-configuration``).
    ``subject``: their ``sub``, exactly (``system:serviceaccount:NS:NAME`` on Kubernetes,
    ``repo:OWNER/REPO:ref:refs/heads/main`` on GitHub Actions).
    ``audience``: the ``aud`` they must carry (Entra ID: ``api://AzureADTokenExchange``);
    ``None``: the token endpoint URL or the server's issuer, as for RFC 7523 §3 assertions.
    """

    issuer: str
    subject: str
    audience: str | None = None


class FederationRefused(Exception):
    """A refused platform assertion; ``description`` never quotes the assertion."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class Federation:
    """The federated clients of one server and the JWKS of their issuers (see the module
    docstring). ``clients``: client id -> :class:`FederatedIdentity` or a sequence of
    them. ``timeout``: seconds for each discovery or JWKS fetch."""

    def __init__(
        self,
        clients: Mapping[str, FederatedIdentity | Iterable[FederatedIdentity]] | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self.identities: dict[str, tuple[FederatedIdentity, ...]] = {
            client_id: (value,) if isinstance(value, FederatedIdentity) else tuple(value)
            for client_id, value in (clients or {}).items()
        }
        self.timeout = timeout
        self._lock = threading.Lock()
        self._jwks_uris: dict[str, str] = {}
        self._keys: dict[str, list[Mapping[str, Any]]] = {}
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def applies(self, claims: Mapping[str, Any], form_client_id: str | None) -> bool:
        """Whether an assertion with these (unverified) claims is a platform's: its ``iss``
        is a federated issuer, or the named client is federated, and ``iss`` is not the
        client id itself (that is ``private_key_jwt``, RFC 7523 §3)."""
        iss = claims.get("iss")
        client_id = form_client_id if form_client_id is not None else claims.get("sub")
        if not isinstance(iss, str) or iss == client_id:
            return False
        issuers = {identity.issuer for ids in self.identities.values() for identity in ids}
        return iss in issuers or form_client_id in self.identities

    def verify(
        self,
        assertion: str,
        header: Mapping[str, Any],
        claims: Mapping[str, Any],
        form_client_id: str | None,
        audiences: Sequence[str],
    ) -> tuple[str, str]:
        """``(client_id, credential fingerprint)`` for a platform assertion that verifies;
        :class:`FederationRefused` otherwise. ``audiences``: the server's own (token URL,
        issuer), for identities without an ``audience``."""
        client_id, identities = self._client(claims, form_client_id)
        issuer = identities[0].issuer
        wanted: set[str] = set()
        for identity in identities:
            wanted.update([identity.audience] if identity.audience else audiences)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in DEFAULT_ALGS:
            raise FederationRefused("the assertion's alg is not an accepted asymmetric one")
        kid = header.get("kid")
        last: Exception | None = None
        for jwk in self._candidates(issuer, kid if isinstance(kid, str) else None, alg):
            try:
                _decode(assertion, jwk, alg, sorted(wanted), issuer)
            except FederationRefused as refused:
                last = refused
                continue
            return client_id, credential_fingerprint(assertion=assertion)
        raise last or FederationRefused("no key of the issuer fits the assertion")

    # -- which client ------------------------------------------------------------------

    def _client(
        self, claims: Mapping[str, Any], form_client_id: str | None
    ) -> tuple[str, list[FederatedIdentity]]:
        iss, sub = claims.get("iss"), claims.get("sub")
        if form_client_id is not None:
            mine = self.identities.get(form_client_id, ())
            if not mine:
                raise FederationRefused("the client has no federated identity")
            same_issuer = [identity for identity in mine if identity.issuer == iss]
            if not same_issuer:
                raise FederationRefused(
                    "the assertion's iss is not the issuer of the client's federated identity")
            matching = [identity for identity in same_issuer if identity.subject == sub]
            if not matching:
                raise FederationRefused(
                    "the assertion's sub is not the subject of the client's federated identity")
            return form_client_id, matching
        found = [(client_id, identity) for client_id, ids in self.identities.items()
                 for identity in ids if identity.issuer == iss and identity.subject == sub]
        if not found:
            raise FederationRefused("no client has a federated identity for this iss and sub")
        if len({client_id for client_id, _ in found}) > 1:
            raise FederationRefused("several clients trust this iss and sub: send client_id")
        return found[0][0], [identity for _, identity in found]

    # -- the issuer's keys -------------------------------------------------------------

    def _candidates(self, issuer: str, kid: str | None, alg: str) -> list[Mapping[str, Any]]:
        """The issuer's signing keys that may have signed it (by ``kid`` when it has one),
        fetching the JWKS again once when none is known."""
        with self._lock:
            keys = self._keys.get(issuer)
            found = _matching(keys or [], kid, alg)
            if keys is None or not found:
                keys = self._keys[issuer] = self._fetch_keys(issuer)
                found = _matching(keys, kid, alg)
        if not found:
            raise FederationRefused("no key in the issuer's JWKS has the assertion's kid"
                                    if kid is not None else "the issuer's JWKS has no fit key")
        return found

    def _fetch_keys(self, issuer: str) -> list[Mapping[str, Any]]:
        jwks_uri = self._jwks_uris.get(issuer)
        if jwks_uri is None:
            document = self._fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration",
                                        "discovery document")
            if document.get("issuer") != issuer:
                raise FederationRefused("the issuer's discovery document names another issuer")
            uri = document.get("jwks_uri")
            if not isinstance(uri, str):
                raise FederationRefused("the issuer's discovery document has no jwks_uri")
            jwks_uri = self._jwks_uris[issuer] = uri
        keys = self._fetch_json(jwks_uri, "JWKS").get("keys")
        if not isinstance(keys, list):
            raise FederationRefused("the issuer's JWKS has no keys array")
        return [key for key in keys if isinstance(key, dict)]

    def _fetch_json(self, url: str, what: str) -> Mapping[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise FederationRefused(f"the issuer's {what} is not at an http(s) URL")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                data = response.read(_MAX_DOCUMENT + 1)
            value = json.loads(data) if len(data) <= _MAX_DOCUMENT else None
        except (OSError, ValueError):  # URLError, HTTPError, timeouts, bad JSON
            value = None
        if not isinstance(value, dict):
            raise FederationRefused(f"the issuer's {what} could not be fetched")
        return value


def _matching(keys: list[Mapping[str, Any]], kid: str | None, alg: str) -> list[Mapping[str, Any]]:
    return [key for key in keys
            if (kid is None or key.get("kid") == kid)
            and key.get("use", "sig") == "sig"
            and key.get("alg", alg) == alg]


def _decode(assertion: str, jwk: Mapping[str, Any], alg: str, audiences: list[str],
            issuer: str) -> None:
    """Verify with one JWK: signature, ``iss``, ``aud``, ``exp`` (required), ``nbf`` and
    ``iat`` when present; a refusal says which, in words of its own."""
    import jwt

    try:
        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise FederationRefused("the issuer's JWKS key for this kid is not usable") from exc
    try:
        jwt.decode(assertion, key, algorithms=[alg], audience=audiences, issuer=issuer,
                   options={"require": ["iss", "sub", "aud", "exp"]})
    except jwt.InvalidAudienceError:
        claims = jwt.decode(assertion, options={"verify_signature": False})
        raise FederationRefused(
            f"the assertion's aud {str(claims.get('aud'))[:200]!r} is not the expected "
            f"audience ({', '.join(map(repr, audiences))})") from None
    except jwt.PyJWTError as exc:
        raise FederationRefused(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    import jwt

    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the assertion has no {exc.claim} claim"
    reasons: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "the assertion has expired"),
        (jwt.ImmatureSignatureError, "the assertion is not valid yet (nbf or iat)"),
        (jwt.InvalidAudienceError, "the assertion's aud is not the expected audience"),
        (jwt.InvalidIssuerError, "the assertion's iss is not the federated issuer"),
        (jwt.InvalidSignatureError, "the assertion's signature does not verify"),
        (jwt.DecodeError, "the assertion is malformed"),
    ]
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "the assertion could not be verified"
