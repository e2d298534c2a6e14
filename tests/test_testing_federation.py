"""OAuthTestServer's federated clients (testing/federation.py): platform-issued client
assertions (RFC 7521 §4.2, RFC 7523 §2.2) verified through the issuer's discovery document
and JWKS, the ``credential`` fingerprints of the token log, and rotation support (several
secrets or keys per client). Plain ``requests.post`` with hand-built forms, real loopback
servers (a FakeIssuer and the OAuthTestServer)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from requests_oauthcc.testing import (
    FakeIssuer,
    FederatedIdentity,
    OAuthTestServer,
    credential_fingerprint,
)

from .certs import make_pki
from .keys import ec_pair, public_thumbprint, rsa_pair

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUBJECT = "system:serviceaccount:payments:api"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    with FakeIssuer() as fake:
        yield fake


@pytest.fixture
def server(issuer: FakeIssuer) -> Iterator[OAuthTestServer]:
    with OAuthTestServer({}, federated_clients={
        "payments": FederatedIdentity(issuer.url, SUBJECT),
    }) as srv:
        yield srv


def ask(server: OAuthTestServer, assertion: str, client_id: str | None = None,
        **extra: str) -> requests.Response:
    """A client-credentials request authenticated by ``assertion`` alone."""
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion, **extra}
    if client_id is not None:
        form["client_id"] = client_id
    return requests.post(server.token_url, data=form, timeout=10)


def refused(server: OAuthTestServer, assertion: str, client_id: str | None = None) -> str:
    """The error_description of a 401 invalid_client, checked to quote no part of the
    assertion, after which the token log has no client and no credential."""
    answer = ask(server, assertion, client_id)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    for part in assertion.split("."):
        assert part not in answer.text
    record = server.token_log[-1]
    assert (record.client_id, record.auth_method, record.credential) == (None, None, None)
    description: str = answer.json()["error_description"]
    return description


# -- accepted -------------------------------------------------------------------------------


def test_a_platform_token_authenticates_its_client_without_client_id(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """A token whose iss and sub are a federated identity's, aud the token URL: 200, the
    token log says which client, private_key_jwt, and the assertion's fingerprint."""
    assertion = issuer.mint(SUBJECT, server.token_url)
    answer = ask(server, assertion)
    assert answer.status_code == 200, answer.text
    record = server.token_log[-1]
    assert (record.client_id, record.auth_method) == ("payments", "private_key_jwt")
    assert record.credential == credential_fingerprint(assertion=assertion)
    assert record.credential.startswith("assertion:") and len(record.credential) == 26
    assert server.issued_tokens()[answer.json()["access_token"]].client_id == "payments"


def test_the_same_platform_token_is_accepted_again_and_the_jwks_is_cached(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """No jti replay check for platform tokens: one token serves three requests (with and
    without client_id); discovery and the JWKS are fetched once."""
    assertion = issuer.mint(SUBJECT, server.token_url)
    statuses = [ask(server, assertion).status_code, ask(server, assertion).status_code,
                ask(server, assertion, "payments").status_code]
    assert statuses == [200, 200, 200]
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


def test_the_server_issuer_is_an_accepted_audience_too(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """Without an audience on the identity, aud may be the token URL or the server's
    issuer (the RFC 7523 §3 audiences)."""
    assert ask(server, issuer.mint(SUBJECT, server.issuer)).status_code == 200


def test_an_identity_with_an_audience_wants_exactly_that_aud(issuer: FakeIssuer) -> None:
    """FederatedIdentity(audience="api://AzureADTokenExchange"), as Entra ID configures
    it: a token for that audience is accepted, one for the token URL is not."""
    identity = FederatedIdentity(issuer.url, SUBJECT, ENTRA_AUDIENCE)
    with OAuthTestServer({}, federated_clients={"app": identity}) as server:
        assert ask(server, issuer.mint(SUBJECT, ENTRA_AUDIENCE), "app").status_code == 200
        assert "aud" in refused(server, issuer.mint(SUBJECT, server.token_url), "app")


def test_a_github_actions_token_from_the_endpoint_is_accepted(issuer: FakeIssuer) -> None:
    """The token GitHub's endpoint hands out (audience asked for) is a valid assertion
    for a client trusting repo:octo-org/octo-repo:ref:refs/heads/main."""
    identity = FederatedIdentity(issuer.url, issuer.github_subject, ENTRA_AUDIENCE)
    with OAuthTestServer({}, federated_clients={"ci": identity}) as server:
        environ = issuer.environ()
        value = requests.get(
            environ["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=" + ENTRA_AUDIENCE,
            headers={"Authorization": "Bearer " + environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]},
            timeout=10).json()["value"]
        assert ask(server, value).status_code == 200
        assert server.token_log[-1].client_id == "ci"


def test_a_rotated_projected_file_authenticates_with_the_new_token(
    server: OAuthTestServer, issuer: FakeIssuer, tmp_path: Path,
) -> None:
    """After the file's rotation and a key rotation, the token read from the path is
    accepted (the JWKS fetched once more for the new kid) and the log's credential is the
    new assertion's, not the old one's."""
    projected = issuer.project(tmp_path, SUBJECT, server.token_url)
    old = projected.read()
    assert ask(server, old).status_code == 200
    issuer.rotate_key()
    new = projected.rotate()
    assert ask(server, projected.read()).status_code == 200
    assert server.token_log[-1].credential == credential_fingerprint(assertion=new)
    assert server.token_log[-1].credential != credential_fingerprint(assertion=old)
    assert issuer.jwks_requests == 2  # refetched once, for the unknown kid


def test_several_clients_trusting_one_identity_need_client_id(issuer: FakeIssuer) -> None:
    """Two clients trusting the same iss and sub: without client_id the server cannot
    choose (401); with it, the one named is authenticated."""
    identity = FederatedIdentity(issuer.url, SUBJECT)
    with OAuthTestServer({}, federated_clients={"a": identity, "b": [identity]}) as server:
        assertion = issuer.mint(SUBJECT, server.token_url)
        assert "client_id" in refused(server, assertion)
        assert ask(server, assertion, "b").status_code == 200
        assert server.token_log[-1].client_id == "b"


# -- refused --------------------------------------------------------------------------------


def test_a_token_from_another_issuer_is_refused(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """A token from an issuer the client does not trust, naming the client: 401 saying
    iss; without client_id no client matches it."""
    with FakeIssuer() as stranger:
        assertion = stranger.mint(SUBJECT, server.token_url)
        assert "iss" in refused(server, assertion, "payments")
        refused(server, assertion)
    assert stranger.jwks_requests == 0  # an untrusted issuer is never contacted


def test_another_subject_of_the_trusted_issuer_is_refused(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """Another service account of the same cluster: 401 saying sub, with or without
    client_id."""
    assertion = issuer.mint("system:serviceaccount:payments:other", server.token_url)
    assert "sub" in refused(server, assertion, "payments")
    assert "sub" in refused(server, assertion)


def test_a_token_for_another_audience_is_refused(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """aud of another server: 401 saying aud."""
    assert "aud" in refused(server, issuer.mint(SUBJECT, "https://other.example/token"))


def test_an_expired_token_is_refused(server: OAuthTestServer, issuer: FakeIssuer) -> None:
    """exp in the past: 401 saying it expired."""
    assert "expired" in refused(server, issuer.mint(SUBJECT, server.token_url, lifetime=-30))


def test_a_token_without_exp_is_refused(server: OAuthTestServer, issuer: FakeIssuer) -> None:
    """exp is required."""
    assertion = issuer.mint(SUBJECT, server.token_url, exp=None)
    assert "exp" in refused(server, assertion)


def test_a_token_signed_by_another_key_under_the_issuers_kid_is_refused(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """A forgery: the trusted iss and kid, signed by the attacker's own key: 401, the
    signature does not verify."""
    attacker = rsa_pair()
    claims = {"iss": issuer.url, "sub": SUBJECT, "aud": server.token_url,
              "exp": int(time.time()) + 300, "iat": int(time.time())}
    forged = jwt.encode(claims, attacker.private, algorithm="RS256",
                        headers={"kid": issuer.kid})
    assert "signature" in refused(server, forged)
    head, body, signature = issuer.mint(SUBJECT, server.token_url).split(".")
    tampered = f"{head}.{body}.{signature[:-8]}{'A' * 8 if signature[-8:] != 'A' * 8 else 'B' * 8}"
    assert "signature" in refused(server, tampered)


def test_a_token_whose_kid_the_issuer_no_longer_publishes_is_refused_after_one_refetch(
    server: OAuthTestServer, issuer: FakeIssuer,
) -> None:
    """After a rotation dropping the old key, the new kid makes the server fetch the
    JWKS again; then a token signed with the old key names a kid unknown to that set: one
    more fetch, then 401 saying kid. Each request fetches at most once."""
    old = issuer.mint(SUBJECT, server.token_url)
    assert ask(server, old).status_code == 200
    issuer.rotate_key(keep_old=False)
    assert ask(server, issuer.mint(SUBJECT, server.token_url)).status_code == 200
    assert issuer.jwks_requests == 2
    assert "kid" in refused(server, old)
    assert issuer.jwks_requests == 3
    with FakeIssuer() as stranger:  # a kid the issuer never had, under the trusted iss
        forged = stranger.mint(SUBJECT, server.token_url, iss=issuer.url)
        assert "kid" in refused(server, forged)
    assert issuer.jwks_requests == 4


def test_a_stopped_issuer_means_refusal(server: OAuthTestServer, issuer: FakeIssuer) -> None:
    """An issuer that cannot be reached: 401 saying its document could not be fetched."""
    assertion = issuer.mint(SUBJECT, server.token_url)
    issuer.stop()
    assert "could not be fetched" in refused(server, assertion)


def test_a_discovery_document_for_another_issuer_is_refused(issuer: FakeIssuer) -> None:
    """An identity whose issuer differs from the one the document names (a trailing
    slash here) is refused: OpenID Connect Discovery §4.3 wants them identical."""
    slashed = issuer.url + "/"
    with OAuthTestServer({}, federated_clients={"c": FederatedIdentity(slashed, SUBJECT)}) as s:
        assertion = issuer.mint(SUBJECT, s.token_url, iss=slashed)
        assert "another issuer" in refused(s, assertion)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.sampled_from(["alg", "kid", "typ"]),
                              st.one_of(st.text(max_size=8), st.integers(), st.none())),
       claims=st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "jti"]),
                              st.one_of(st.text(max_size=12), st.integers(), st.none(),
                                        st.lists(st.text(max_size=4), max_size=2))),
       use_issuer=st.booleans(), use_subject=st.booleans())
def test_whatever_a_client_asserts_the_answer_is_a_clean_refusal(
    server: OAuthTestServer, issuer: FakeIssuer, header: dict[str, object],
    claims: dict[str, object], use_issuer: bool, use_subject: bool,
) -> None:
    """Any header and claims (signed with a key the issuer does not publish): a 400 or
    401 with a JSON error, never a dropped connection, never the assertion echoed."""
    if use_issuer:
        claims["iss"] = issuer.url
    if use_subject:
        claims["sub"] = SUBJECT
    assertion = signed({"typ": "JWT", **header}, claims)
    answer = ask(server, assertion)
    assert answer.status_code in (400, 401)
    assert answer.json()["error"] in ("invalid_client", "invalid_request")
    assert assertion.split(".")[2] not in answer.text


ATTACKER = ec_pair()


def signed(header: dict[str, object], claims: dict[str, object]) -> str:
    """A compact JWS of any JSON header and claims, ES256-signed by ATTACKER (PyJWT's
    encode refuses odd claims, a peer does not)."""
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256).sign(
        signing_input.encode(), ATTACKER.private)
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


# -- credentials and rotation ----------------------------------------------------------------


def test_every_secret_of_a_client_is_accepted_and_the_log_says_which(
    tmp_path: Path,
) -> None:
    """clients={"c": ["old", "new"]}: both secrets work (Basic and post); the credential
    fingerprint tells them apart; a third is refused; client_secret is the first."""
    with OAuthTestServer({"c": ["old-secret", "new-secret"]}) as server:
        grant = {"grant_type": "client_credentials"}
        assert requests.post(server.token_url, data=grant, auth=("c", "old-secret"),
                             timeout=10).status_code == 200
        assert server.token_log[-1].credential == credential_fingerprint(secret="old-secret")
        assert requests.post(server.token_url, timeout=10, data={
            **grant, "client_id": "c", "client_secret": "new-secret"}).status_code == 200
        assert server.token_log[-1].credential == credential_fingerprint(secret="new-secret")
        assert requests.post(server.token_url, data=grant, auth=("c", "other"),
                             timeout=10).status_code == 401
        assert server.client_secret == "old-secret"
    assert credential_fingerprint(secret="old-secret").startswith("secret:")
    assert len(credential_fingerprint(secret="old-secret")) == len("secret:") + 16


def client_assertion(client_id: str, audience: str, key: object, alg: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": audience, "iat": now,
                       "exp": now + 60, "jti": str(uuid.uuid4())}, key,  # type: ignore[arg-type]
                      algorithm=alg)


def test_every_key_of_a_client_is_accepted_and_the_log_says_which() -> None:
    """client_keys={"c": [PEM, JWK]}: assertions signed by either key work, each logged
    with its key's RFC 7638 thumbprint; a key not registered is refused; the jti replay
    check of private_key_jwt still holds."""
    first, second, stranger = rsa_pair(), ec_pair(), rsa_pair()
    second_jwk = jwt.algorithms.ECAlgorithm.to_jwk(second.public, as_dict=True)
    with OAuthTestServer({}, client_keys={"c": [first.public_pem, second_jwk]}) as server:
        for pair, alg in ((first, "RS256"), (second, "ES256")):
            assertion = client_assertion("c", server.token_url, pair.private, alg)
            assert ask(server, assertion, "c").status_code == 200
            assert server.token_log[-1].credential == "key:" + public_thumbprint(pair)
            assert server.token_log[-1].auth_method == "private_key_jwt"
            assert ask(server, assertion, "c").status_code == 401  # jti seen before
        assertion = client_assertion("c", server.token_url, stranger.private, "RS256")
        answer = ask(server, assertion, "c")
        assert answer.status_code == 401
        assert "signature does not verify" in answer.json()["error_description"]


def test_client_secret_jwt_with_several_secrets_logs_the_secret_that_verified() -> None:
    """An HS256 assertion made with the second of two secrets is accepted and logged as
    that secret's fingerprint."""
    secrets_ = ["a-first-secret-long-enough-for-hs256-0123456789",
                "a-second-secret-long-enough-for-hs256-012345678"]
    with OAuthTestServer({"c": secrets_}) as server:
        assertion = client_assertion("c", server.token_url, secrets_[1].encode(), "HS256")
        assert ask(server, assertion, "c").status_code == 200
        assert server.token_log[-1].auth_method == "client_secret_jwt"
        assert server.token_log[-1].credential == credential_fingerprint(secret=secrets_[1])


def test_a_federated_client_may_still_use_private_key_jwt() -> None:
    """iss = sub = the client id is private_key_jwt even for a federated client: its
    registered key verifies it and the credential is the key's."""
    pair = rsa_pair()
    with FakeIssuer() as issuer, OAuthTestServer({}, client_keys={"c": pair.public_pem},
                                                 federated_clients={
            "c": FederatedIdentity(issuer.url, SUBJECT)}) as server:
        assertion = client_assertion("c", server.token_url, pair.private, "RS256")
        assert ask(server, assertion, "c").status_code == 200
        assert server.token_log[-1].credential == "key:" + public_thumbprint(pair)
        assert issuer.jwks_requests == 0


def test_an_mtls_client_is_logged_with_its_certificates_fingerprint(tmp_path: Path) -> None:
    """tls_client_auth: the credential is cert:<SHA-256 of the DER certificate>, computed
    the same from the PEM file, and equal to the issued token's cert_thumbprint."""
    pki = make_pki(tmp_path)
    with OAuthTestServer({}, certfile=pki.server_cert, keyfile=pki.server_key,
                         client_ca=pki.trust_bundle, tls_clients={"m": "test-client"}) as server:
        answer = requests.post(server.token_url, timeout=10, verify=pki.ca,
                               cert=(pki.client_cert, pki.client_key),
                               data={"grant_type": "client_credentials", "client_id": "m"})
        assert answer.status_code == 200, answer.text
        expected = credential_fingerprint(certificate=pki.client_cert)
        assert server.token_log[-1].credential == expected
        issued = server.issued_tokens()[answer.json()["access_token"]]
        assert expected == f"cert:{issued.cert_thumbprint}"


def test_credential_fingerprint_reads_every_form_of_a_key_alike() -> None:
    """A public PEM, the private PEM, a JWK and the key object give one thumbprint; the
    function wants exactly one credential."""
    pair = ec_pair()
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(pair.public, as_dict=True)
    forms = [pair.public_pem, pair.private_pem, pair.public_pem.encode(), jwk, pair.public,
             pair.private]
    assert {credential_fingerprint(public_key=form) for form in forms} == {
        "key:" + public_thumbprint(pair)}
    with pytest.raises(TypeError):
        credential_fingerprint()
    with pytest.raises(TypeError):
        credential_fingerprint(secret="s", assertion="a")
