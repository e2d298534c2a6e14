"""DPoP (RFC 9449) with the RFC 8705 client authentication methods, at the https
oidc-provider of the mTLS tests (conftest.py's ``interop_mtls``), where DPoP is on by
oidc-provider's default (ES256 or EdDSA proofs, nonces optional)."""

from __future__ import annotations

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, DPoPKey, InvalidRequestError

from .conftest import MtlsInterop


def _mtls_auth(interop_mtls: MtlsInterop, client_id: str, method: str, key: DPoPKey,
               session: requests.Session) -> ClientCredentialsAuth:
    """An auth for an RFC 8705 client, its token requests sent through ``session``."""
    pki = interop_mtls.pki
    cert = ((pki.client_cert, pki.client_key) if method == "tls_client_auth"
            else (pki.self_signed_cert, pki.self_signed_key))
    session.verify = pki.ca
    return ClientCredentialsAuth(interop_mtls.token_url, client_id, auth_method=method,
                                 cert=cert, session=session, retries=0, dpop=key)


@pytest.mark.parametrize(
    ("client_id", "method"),
    [("mtls-dpop-client", "tls_client_auth"),
     ("self-signed-dpop-client", "self_signed_tls_client_auth")],
)
def test_mtls_methods_get_tokens_bound_to_the_key(
    interop_mtls: MtlsInterop, client_id: str, method: str
) -> None:
    """The RFC 8705 methods authenticate the client with dpop= too: the token is a DPoP
    token bound to the key (cnf.jkt), not to the certificate, as introspection shows."""
    key = DPoPKey.generate()
    with requests.Session() as session:
        token = _mtls_auth(interop_mtls, client_id, method, key, session).fetch_token()
    assert token.raw["token_type"] == "DPoP" and token.authorization.startswith("DPoP ")
    info = requests.post(f"{interop_mtls.issuer}/token/introspection",
                         verify=interop_mtls.pki.ca, auth=("resource-server", "rs-secret"),
                         timeout=10, data={"token": token.access_token}).json()
    assert info["active"] is True and info["client_id"] == client_id
    assert info["cnf"] == {"jkt": key.thumbprint}


def test_certificate_bound_clients_cannot_use_dpop_too(interop_mtls: MtlsInterop) -> None:
    """A client registered for certificate-bound tokens asking for a DPoP one: oidc-provider
    refuses two proof-of-possession mechanisms with invalid_request, which the client
    raises as InvalidRequestError (no retry, no Bearer fallback)."""
    with requests.Session() as session, pytest.raises(InvalidRequestError) as caught:
        _mtls_auth(interop_mtls, "mtls-client", "tls_client_auth", DPoPKey.generate(),
                   session).fetch_token()
    assert "proof-of-possession" in str(caught.value)
