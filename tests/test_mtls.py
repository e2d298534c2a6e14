"""tls_client_auth and self_signed_tls_client_auth (RFC 8705) over real TLS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, ConfigurationError, InvalidClientError
from requests_oauthcc.testing import OAuthTestServer

from .certs import Pki, make_pki

CLIENT = "mtls-client"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mtls"))


@pytest.fixture
def mtls_server(pki: Pki) -> Iterator[OAuthTestServer]:
    with OAuthTestServer(
        {}, certfile=pki.server_cert, keyfile=pki.server_key, client_ca=pki.trust_bundle,
        tls_clients={CLIENT: "test-client", "self-signed": "self-signed-client"},
    ) as server:
        yield server


def verifying_session(pki: Pki) -> requests.Session:
    session = requests.Session()
    session.verify = pki.ca
    return session


def test_tls_client_auth_with_the_cert_shortcut(mtls_server: OAuthTestServer, pki: Pki) -> None:
    """cert=(cert, key): the certificate authenticates; only client_id is in the form."""
    auth = ClientCredentialsAuth(
        mtls_server.token_url, CLIENT, auth_method="tls_client_auth",
        cert=(pki.client_cert, pki.client_key), session=verifying_session(pki),
    )
    auth.fetch_token()
    record = mtls_server.token_log[-1]
    assert record.form == {"grant_type": ["client_credentials"], "client_id": [CLIENT]}
    assert "Authorization" not in record.headers


def test_tls_client_auth_with_the_token_sessions_cert(
    mtls_server: OAuthTestServer, pki: Pki
) -> None:
    """A token Session whose cert is set is enough; the method is inferred from it."""
    session = verifying_session(pki)
    session.cert = (pki.client_cert, pki.client_key)
    auth = ClientCredentialsAuth(mtls_server.token_url, CLIENT, session=session)
    assert "tls_client_auth" in repr(auth)
    assert auth.fetch_token().access_token


def test_self_signed_tls_client_auth(mtls_server: OAuthTestServer, pki: Pki) -> None:
    """A registered self-signed certificate authenticates its client."""
    auth = ClientCredentialsAuth(
        mtls_server.token_url, "self-signed", auth_method="self_signed_tls_client_auth",
        cert=(pki.self_signed_cert, pki.self_signed_key), session=verifying_session(pki),
    )
    assert auth.fetch_token().access_token


def test_wrong_certificate_for_the_client_is_refused(
    mtls_server: OAuthTestServer, pki: Pki
) -> None:
    """A valid certificate registered to another client gives invalid_client."""
    auth = ClientCredentialsAuth(
        mtls_server.token_url, "self-signed", auth_method="tls_client_auth",
        cert=(pki.client_cert, pki.client_key), session=verifying_session(pki), retries=0,
    )
    with pytest.raises(InvalidClientError):
        auth.fetch_token()


def test_certificate_bound_token_needs_the_same_certificate(
    mtls_server: OAuthTestServer, pki: Pki
) -> None:
    """The API refuses the bound token without the certificate; make_session() sends it."""
    auth = ClientCredentialsAuth(
        mtls_server.token_url, CLIENT, auth_method="tls_client_auth",
        cert=(pki.client_cert, pki.client_key), session=verifying_session(pki),
    )
    without = requests.get(mtls_server.resource_url, auth=auth, verify=pki.ca, timeout=5)
    assert without.status_code == 401
    with auth.make_session() as api:
        response = api.get(mtls_server.resource_url, verify=pki.ca)
    assert response.status_code == 200 and response.json()["client_id"] == CLIENT


def test_tls_methods_need_a_certificate() -> None:
    """Without cert= or a Session cert, the mTLS methods refuse at construction."""
    for method in ("tls_client_auth", "self_signed_tls_client_auth"):
        with pytest.raises(ConfigurationError, match="needs a client certificate"):
            ClientCredentialsAuth("https://as.example/token", CLIENT, auth_method=method)


def test_mtls_endpoint_alias_from_discovery(pki: Pki) -> None:
    """With an mTLS method, discovery uses mtls_endpoint_aliases.token_endpoint."""
    with OAuthTestServer(
        {}, certfile=pki.server_cert, keyfile=pki.server_key, client_ca=pki.trust_bundle,
        tls_clients={CLIENT: "test-client"},
    ) as server:
        server.metadata_overrides.update({
            "token_endpoint": "https://127.0.0.1:1/not-this-one",
            "mtls_endpoint_aliases": {"token_endpoint": server.token_url},
        })
        auth = ClientCredentialsAuth.from_issuer(
            server.issuer, CLIENT, cert=(pki.client_cert, pki.client_key),
            session=verifying_session(pki),
        )
        assert auth.fetch_token().access_token
        assert server.token_log[-1].auth_method == "tls_client_auth"
