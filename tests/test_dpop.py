"""DPoP (RFC 9449) in the client, against the testing kit's server, whose proof checker was
written from the RFC apart from the client (requests_oauthcc/testing/dpop.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    DiscoveryError,
    DPoPKey,
    InvalidDPoPProofError,
    InvalidTokenResponseError,
    TokenError,
)
from requests_oauthcc._proofs import Proofs
from requests_oauthcc.testing import CheckedProof, OAuthTestServer
from requests_oauthcc.testing.dpop import access_token_hash, jwk_thumbprint

from .certs import Pki, make_pki
from .conftest import CLIENT_ID, CLIENT_SECRET, in_threads, missing
from .keys import ec_pair, rsa_pair
from .quirky import QuirkyServer
from .rawserver import RawRequest, RawServer, raw_response

KEY_ALGS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey.generate()


def auth_for(server: OAuthTestServer, key: DPoPKey, **options: Any) -> ClientCredentialsAuth:
    options.setdefault("retries", 0)
    return ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, dpop=key,
                                 **options)


def proofs_at(server: OAuthTestServer, where: str) -> list[CheckedProof]:
    return [proof for place, proof in server.dpop_proofs if place == where]


# -- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", KEY_ALGS)
def test_generated_keys_bind_tokens_the_server_checks(
    server: OAuthTestServer, alg: str
) -> None:
    """Each algorithm: the token is DPoP-bound to the key, and the resource accepts it."""
    key = DPoPKey.generate(alg)
    auth = auth_for(server, key)
    answer = requests.get(server.resource_url, auth=auth)
    assert answer.status_code == 200
    assert answer.json()["dpop_jkt"] == key.thumbprint
    assert auth.token is not None and auth.token.token_type == "DPoP"
    assert answer.request.headers["Authorization"].startswith("DPoP ")
    issued = server.issued_tokens()[auth.token.access_token]
    assert issued.jkt == key.thumbprint
    assert {proof.header["alg"] for _, proof in server.dpop_proofs} == {alg}


def test_thumbprint_is_rfc7638_and_repr_shows_nothing_else(key: DPoPKey) -> None:
    """The thumbprint is the RFC 7638 one; repr holds the algorithm and thumbprint only."""
    assert key.thumbprint == jwk_thumbprint(key.public_jwk)
    assert repr(key) == f"DPoPKey(alg='ES256', thumbprint='{key.thumbprint}')"
    private = key.key.private_numbers().private_value
    assert str(private) not in repr(key) and "d" not in key.public_jwk


def test_keys_load_from_pem_path_bytes_and_jwk(tmp_path: Path) -> None:
    """The loaders of private_key= make the same key, with its thumbprint."""
    pair = rsa_pair()
    path = tmp_path / "dpop.pem"
    path.write_text(pair.private_pem)
    keys = [DPoPKey.load(pair.private_pem), DPoPKey.load(pair.private_pem.encode()),
            DPoPKey.load(path), DPoPKey.load(str(path)), DPoPKey.load(pair.private_jwk()),
            DPoPKey.load(pair.private_pem, "PS256")]
    assert len({k.thumbprint for k in keys}) == 1
    assert [k.alg for k in keys] == ["RS256"] * 5 + ["PS256"]


def test_keys_load_from_jwk_json_text_and_files(tmp_path: Path) -> None:
    """A JWK as JSON text (an environment variable's content) or in a file, a JWK Set of
    one key too: the same key."""
    pair = ec_pair()
    jwk_text = json.dumps(pair.private_jwk())
    (tmp_path / "key.jwk").write_text(jwk_text)
    (tmp_path / "key.jwks").write_text(json.dumps({"keys": [pair.private_jwk()]}))
    keys = [DPoPKey.load(jwk_text), DPoPKey.load(tmp_path / "key.jwk"),
            DPoPKey.load(str(tmp_path / "key.jwks")), DPoPKey.load(pair.private_pem)]
    assert len({k.thumbprint for k in keys}) == 1


@pytest.mark.parametrize("credential", [
    "a-client-secret", "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/abc+def",
    '{"kty": "EC", "crv": "P-256", "d": "MIGH-not-a-key"}',
], ids=["secret", "base64-body", "broken-jwk-text"])
def test_a_credential_given_as_a_path_is_never_quoted(credential: str) -> None:
    """A value given where a path belongs is often the credential itself: a path to no
    file is not quoted back (an outside review got a private JWK and a secret echoed)."""
    for load in (DPoPKey.load, lambda value: ClientCredentialsAuth(
            "https://auth.example.com/token", "id", private_key=value)):
        with pytest.raises(ConfigurationError) as caught:
            load(credential)
        assert credential not in str(caught.value)
        assert "MIGH" not in str(caught.value)


@pytest.mark.parametrize(("source", "words"), [
    ("", "is empty"),
    ({**ec_pair().private_jwk(), "alg": "RS256"},
     "'RS256' does not fit this key; use one of: ES256"),
    ({"kty": "oct", "k": "c2VjcmV0"}, "kty 'oct', which cannot sign"),
    (json.dumps({"keys": [ec_pair().private_jwk()] * 2}), "JWK Set of 2 keys"),
], ids=["empty", "alg-of-another-key-type", "symmetric", "two-keys"])
def test_key_source_mistakes_say_what_is_wrong(source: Any, words: str) -> None:
    """What a key source holds is named: empty, an algorithm the key cannot use, a key that
    cannot sign, a set of several keys."""
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        DPoPKey.load(source)


def test_short_rsa_keys_are_refused() -> None:
    """RFC 7518 §3.3: RS256 and PS256 keys have 2048 bits or more."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    with pytest.raises(ConfigurationError, match="1024 bits is too short"):
        DPoPKey(rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256")


@pytest.mark.parametrize("make", [
    lambda: DPoPKey.load(ec_pair().public_pem),
    lambda: DPoPKey.load(ec_pair().private_pem, "RS256"),
    lambda: DPoPKey.generate("HS256"),
    lambda: DPoPKey.generate("none"),
    lambda: DPoPKey.generate().with_alg("PS256"),
], ids=["public-key", "alg-of-another-key", "hmac", "none", "with-wrong-alg"])
def test_unusable_keys_are_configuration_errors(make: Any) -> None:
    """A public key, an algorithm the key cannot use or a symmetric one: a clear error."""
    with pytest.raises(ConfigurationError) as caught:
        make()
    assert "PRIVATE KEY" not in str(caught.value)


def test_the_auth_repr_shows_the_thumbprint_only(server: OAuthTestServer,
                                                 key: DPoPKey) -> None:
    """The auth's repr names the key by algorithm and thumbprint."""
    assert repr(auth_for(server, key)).endswith(f", dpop={key!r})")


def test_dpop_must_be_a_key(server: OAuthTestServer) -> None:
    """dpop= takes a DPoPKey, and says how to make one."""
    with pytest.raises(ConfigurationError, match=r"DPoPKey.generate\(\)"):
        auth_for(server, ec_pair().private_pem)  # type: ignore[arg-type]


def test_key_and_auth_pickle(server: OAuthTestServer, key: DPoPKey) -> None:
    """A pickled key (and an auth holding one) signs with the same key afterwards."""
    assert pickle.loads(pickle.dumps(key)).thumbprint == key.thumbprint
    auth = pickle.loads(pickle.dumps(auth_for(server, key)))
    assert requests.get(server.resource_url, auth=auth).json()["dpop_jkt"] == (
        key.thumbprint)


# -- token requests -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post",
                                    "client_secret_jwt", "private_key_jwt"])
def test_every_client_auth_method_gets_a_bound_token(key: DPoPKey, method: str) -> None:
    """The proof rides along with every client authentication method."""
    client_key = rsa_pair()
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET},
                         client_keys={CLIENT_ID: client_key.public_pem}) as server:
        extra: dict[str, Any] = {"auth_method": method}
        if method == "private_key_jwt":
            extra["private_key"] = client_key.private_pem
        auth = auth_for(server, key, **extra)
        assert requests.get(server.resource_url, auth=auth).status_code == 200
        assert server.token_log[-1].auth_method == method
        (token_proof,) = proofs_at(server, "token")
        assert (token_proof.htm, token_proof.htu, token_proof.ath) == (
            "POST", server.token_url, None)
        assert token_proof.thumbprint == key.thumbprint


def test_mtls_client_auth_gets_a_bound_token(tmp_path: Path, key: DPoPKey) -> None:
    """tls_client_auth over real TLS, with a DPoP proof: a token bound to both."""
    pki: Pki = make_pki(tmp_path)
    with OAuthTestServer({}, certfile=pki.server_cert, keyfile=pki.server_key,
                         client_ca=pki.trust_bundle,
                         tls_clients={CLIENT_ID: "test-client"}) as server:
        token_session = requests.Session()
        token_session.verify = pki.ca
        auth = ClientCredentialsAuth(
            server.token_url, CLIENT_ID, auth_method="tls_client_auth", dpop=key,
            cert=(pki.client_cert, pki.client_key), session=token_session)
        with auth.make_session() as api:
            answer = api.get(server.resource_url, verify=pki.ca)
        assert answer.status_code == 200 and answer.json()["dpop_jkt"] == key.thumbprint
        issued = server.issued_tokens()[auth.token.access_token]  # type: ignore[union-attr]
        assert issued.jkt == key.thumbprint and issued.cert_thumbprint is not None


def test_dpop_token_without_dpop_is_refused() -> None:
    """A DPoP token cannot be used without the key: refused, and the message says why."""
    with QuirkyServer(token_type="DPoP") as quirky:
        auth = ClientCredentialsAuth(quirky.token_url, quirky.client_id,
                                     quirky.client_secret, retries=0)
        with pytest.raises(InvalidTokenResponseError, match="DPoP tokens need dpop="):
            auth.fetch_token()


def test_a_bearer_answer_is_sent_as_bearer_and_logged_once(
    key: DPoPKey, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9449 §5 lets a server issue an unbound token: sent as Bearer, without proofs."""
    with QuirkyServer() as quirky, caplog.at_level(logging.WARNING, "requests_oauthcc"):
        auth = ClientCredentialsAuth(quirky.token_url, quirky.client_id,
                                     quirky.client_secret, dpop=key, retries=0)
        auth.fetch_token()
        answer = requests.get(quirky.api_url, auth=auth)
        auth.fetch_token()
    assert answer.request.headers["Authorization"].startswith("Bearer ")
    assert "DPoP" not in answer.request.headers
    warnings = [r.getMessage() for r in caplog.records if "RFC 9449 §5" in r.getMessage()]
    assert len(warnings) == 1


def test_token_endpoint_nonce_is_retried_once_then_reused(nonce_server: OAuthTestServer,
                                                          key: DPoPKey) -> None:
    """400 use_dpop_nonce: sent again at once with the nonce; the next fetch needs no retry."""
    auth = auth_for(nonce_server, key)
    auth.fetch_token()
    assert nonce_server.token_requests == 2
    auth.fetch_token()
    assert nonce_server.token_requests == 3
    assert [p.nonce for p in proofs_at(nonce_server, "token")] == [
        nonce_server.token_dpop.nonce()] * 2


def test_a_token_endpoint_that_keeps_asking_for_a_nonce_fails_after_one_retry(
    key: DPoPKey
) -> None:
    """A nonce that never satisfies the server: two token requests, then the typed error."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as server:
        for _ in range(3):
            server.queue_response(400, {"error": "use_dpop_nonce"},
                                  headers={"DPoP-Nonce": secrets.token_urlsafe(8)})
        auth = auth_for(server, key)
        with pytest.raises(TokenError) as caught:
            auth.fetch_token()
        assert caught.value.error == "use_dpop_nonce"
        assert server.token_requests == 2


def test_proofs_never_reach_error_messages(key: DPoPKey) -> None:
    """A server quoting the proof in its error: redacted like a secret."""
    def quote_proof(request: RawRequest) -> list[tuple[float, bytes]]:
        body = json.dumps({"error": "invalid_dpop_proof",
                           "error_description": f"bad proof {request.headers['dpop']}"})
        return [(0, raw_response(400, body.encode(), {"Content-Type": "application/json"}))]

    with RawServer(quote_proof) as server:
        auth = ClientCredentialsAuth(server.url("/token"), CLIENT_ID, CLIENT_SECRET, dpop=key,
                                     retries=0)
        with pytest.raises(InvalidDPoPProofError) as caught:
            auth.fetch_token()
    proof = server.requests[0].headers["dpop"]
    assert "bad proof [redacted]" in str(caught.value)
    assert caught.value.response is not None
    assert "DPoP" not in caught.value.response.request.headers
    assert proof not in str(caught.value) and proof.split(".")[1] not in str(caught.value)


# -- API requests -------------------------------------------------------------------------


def test_each_request_gets_a_fresh_proof_for_itself(server: OAuthTestServer,
                                                     key: DPoPKey) -> None:
    """Distinct jti, the request's own method and URL (no query), ath of the token."""
    session = requests.Session()
    session.auth = auth = auth_for(server, key)
    calls = [("GET", "/resource/a?x=1"), ("POST", "/resource/b#frag"), ("PUT", "/resource/a"),
             ("DELETE", "/resource/c?y=2&z=3"), ("GET", "/resource/a?x=1")]
    for method, path in calls:
        assert session.request(method, server.url(path), data=b"body").status_code == 200
    seen = proofs_at(server, "resource")
    assert len({p.jti for p in seen}) == 5
    assert [(p.htm, p.htu) for p in seen] == [
        (m, server.url(p.partition("?")[0].partition("#")[0])) for m, p in calls]
    assert auth.token is not None
    assert {p.ath for p in seen} == {access_token_hash(auth.token.access_token)}


@pytest.mark.parametrize(("status", "method", "hop_method"), [
    (302, "GET", "GET"), (303, "POST", "GET"), (307, "POST", "POST"), (308, "PUT", "PUT")])
def test_each_redirect_hop_gets_a_proof_for_that_hop(
    server: OAuthTestServer, key: DPoPKey, status: int, method: str, hop_method: str
) -> None:
    """requests does not call the auth on a redirect: the hop still carries its own proof."""
    auth = auth_for(server, key)
    answer = requests.request(
        method, server.url(f"/redirect?to=/resource/hop%3Fq%3D1&status={status}"),
        auth=auth, data=b"payload")
    assert answer.status_code == 200, answer.headers
    (hop,) = proofs_at(server, "resource")
    assert (hop.htm, hop.htu) == (hop_method, server.url("/resource/hop"))


def test_a_redirect_to_another_host_carries_neither_token_nor_proof(
    server: OAuthTestServer, key: DPoPKey
) -> None:
    """requests strips Authorization for another host; the proof goes with it."""
    with RawServer(lambda request: [(0, raw_response(200, b"{}"))],
                   host="127.0.0.2") as other:
        target = other.url("/elsewhere")
        answer = requests.get(server.url(f"/redirect?to={target}"),
                              auth=auth_for(server, key))
    assert answer.status_code == 200
    (request,) = other.requests
    assert "authorization" not in request.headers and "dpop" not in request.headers


def test_resource_nonce_is_retried_once_then_steady_state(nonce_server: OAuthTestServer,
                                                          key: DPoPKey) -> None:
    """401 use_dpop_nonce: sent again with the nonce and the same token; later calls use it."""
    session = requests.Session()
    session.auth = auth_for(nonce_server, key)
    assert session.get(nonce_server.resource_url).status_code == 200
    assert (nonce_server.resource_requests, nonce_server.token_requests) == (2, 2)
    for _ in range(5):
        assert session.get(nonce_server.resource_url).status_code == 200
    assert (nonce_server.resource_requests, nonce_server.token_requests) == (7, 2)


def test_a_rotated_nonce_is_learned_without_an_extra_round_trip(
    nonce_server: OAuthTestServer, key: DPoPKey
) -> None:
    """A DPoP-Nonce on a success replaces the nonce kept for that origin."""
    session = requests.Session()
    session.auth = auth_for(nonce_server, key)
    session.get(nonce_server.resource_url)
    _, fresh = nonce_server.rotate_dpop_nonces()
    before = nonce_server.resource_requests
    for _ in range(3):
        assert session.get(nonce_server.resource_url).status_code == 200
    assert nonce_server.resource_requests - before == 3
    assert proofs_at(nonce_server, "resource")[-1].nonce == fresh


def test_a_resource_that_keeps_asking_for_a_nonce_gets_one_retry(
    server: OAuthTestServer, key: DPoPKey
) -> None:
    """An endless use_dpop_nonce: the 401 is returned after two requests, no token request."""
    def ask_again(request: RawRequest) -> list[tuple[float, bytes]]:
        return [(0, raw_response(401, b"{}", {
            "WWW-Authenticate": 'DPoP error="use_dpop_nonce", algs="ES256"',
            "DPoP-Nonce": secrets.token_urlsafe(12)}))]

    auth = auth_for(server, key)
    with RawServer(ask_again, keep_alive=True) as api:
        for calls in (1, 2):
            answer = requests.get(api.url("/data"), auth=auth)
            assert answer.status_code == 401
            assert len(api.requests) == 2 * calls
    assert server.token_requests == 1
    first, second = (json.loads(_payload(r.headers["dpop"])) for r in api.requests[:2])
    assert "nonce" not in first and second["nonce"]


def _payload(proof: str) -> str:
    import base64

    part = proof.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_a_nonce_with_an_unreplayable_body_is_kept_for_the_next_call(
    nonce_server: OAuthTestServer, key: DPoPKey
) -> None:
    """A generator body cannot be sent again: the 401 is returned, the next call succeeds."""
    auth = auth_for(nonce_server, key)
    first = requests.post(nonce_server.resource_url, data=iter([b"a", b"b"]), auth=auth)
    assert first.status_code == 401
    before = nonce_server.resource_requests
    assert requests.post(nonce_server.resource_url, data=b"ab", auth=auth).status_code == 200
    assert nonce_server.resource_requests - before == 1


def test_revocation_costs_one_new_token_bound_to_the_same_key(
    nonce_server: OAuthTestServer, key: DPoPKey
) -> None:
    """invalid_token: one new token, bound to the same key, and the call succeeds."""
    auth = auth_for(nonce_server, key)
    assert requests.get(nonce_server.resource_url, auth=auth).status_code == 200
    fetches = nonce_server.token_requests
    nonce_server.revoke_all()
    answer = requests.get(nonce_server.resource_url, auth=auth)
    assert answer.status_code == 200 and answer.json()["dpop_jkt"] == key.thumbprint
    assert nonce_server.token_requests == fetches + 1
    assert len(nonce_server.issued_tokens()) == 1


def test_revocation_and_a_rotated_nonce_in_one_call(nonce_server: OAuthTestServer,
                                                     key: DPoPKey) -> None:
    """Both retries in one call, each at most once: at most three sends, then a 200."""
    auth = auth_for(nonce_server, key)
    requests.get(nonce_server.resource_url, auth=auth)
    nonce_server.revoke_all()
    nonce_server.rotate_dpop_nonces()
    nonce_server.rotate_dpop_nonces()  # the nonce the client holds is no longer accepted
    before = nonce_server.resource_requests
    assert requests.get(nonce_server.resource_url, auth=auth).status_code == 200
    assert nonce_server.resource_requests - before <= 3


@pytest.mark.parametrize("nonces", [False, True])
def test_32_cold_threads_make_one_token_fetch(key: DPoPKey, nonces: bool) -> None:
    """One fetch for all threads; with nonces it costs two token requests (the first 400)."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_nonce=nonces) as server:
        auth = auth_for(server, key)
        statuses = in_threads(32, lambda: requests.get(server.resource_url, auth=auth)
                              .status_code)
        assert statuses == [200] * 32
        assert server.token_requests == (2 if nonces else 1)
        assert len({p.jti for p in proofs_at(server, "resource")}) == len(
            proofs_at(server, "resource"))


def test_no_proof_goes_where_the_token_does_not(server: OAuthTestServer,
                                                key: DPoPKey) -> None:
    """allowed_origins: a request elsewhere gets neither the token nor a proof."""
    auth = auth_for(server, key, allowed_origins=["https://api.example.com"])
    answer = requests.get(server.resource_url, auth=auth)
    assert answer.status_code == 401
    assert "DPoP" not in answer.request.headers and "Authorization" not in answer.request.headers


# -- discovery ----------------------------------------------------------------------------


def test_discovery_chooses_an_algorithm_the_server_lists() -> None:
    """An RSA key whose RS256 is not listed signs with PS256, which is."""
    key = DPoPKey.load(rsa_pair().private_pem)
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_algs=["PS256", "ES256"]) as server:
        auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET,
                                                 dpop=key)
        assert requests.get(server.resource_url, auth=auth).status_code == 200
        assert {p.header["alg"] for _, p in server.dpop_proofs} == {"PS256"}


def test_discovery_refuses_a_key_the_server_cannot_accept() -> None:
    """An EC P-384 key and a server listing ES256 only: a clear DiscoveryError."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_algs=["ES256"]) as server:
        auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET,
                                                 dpop=DPoPKey.generate("ES384"))
        with pytest.raises(DiscoveryError, match=r"ES256.*can sign only ES384"):
            auth.fetch_token()
        assert server.token_requests == 0


# -- nonces from a hostile server ---------------------------------------------------------


@given(st.text(max_size=1100))
def test_only_well_formed_nonces_are_kept(value: str) -> None:
    """Any DPoP-Nonce value: kept only if it is 1*NQCHAR of at most 1 KiB, never raises."""
    proofs = Proofs(_KEY)
    response = requests.Response()
    response.request = requests.Request("GET", "https://api.example.com/x").prepare()
    response.headers["DPoP-Nonce"] = value
    kept = proofs.learn(response)
    valid = 0 < len(value) <= 1024 and all(
        c == "\x21" or "\x23" <= c <= "\x5b" or "\x5d" <= c <= "\x7e" for c in value)
    assert kept == valid
    assert proofs.nonce("https://api.example.com/") == (value if valid else None)


_KEY = DPoPKey.generate()


def test_a_refused_proof_keeps_the_token(server: OAuthTestServer, key: DPoPKey) -> None:
    """401 invalid_dpop_proof refuses the proof, not the token (RFC 9449 §7.1): a new token
    bound to the same key cannot help, so none is fetched and the 401 is returned."""
    def refuse_proof(request: RawRequest) -> list[tuple[float, bytes]]:
        return [(0, raw_response(401, b"{}", {
            "WWW-Authenticate": 'DPoP error="invalid_dpop_proof", algs="PS256"'}))]

    auth = auth_for(server, key)
    with RawServer(refuse_proof, keep_alive=True) as api:
        for _ in range(3):
            assert requests.get(api.url("/data"), auth=auth).status_code == 401
        assert len(api.requests) == 3
    assert server.token_requests == 1


@pytest.mark.parametrize("form", ["////{host}/steal", "//{host}/steal"])
def test_a_location_naming_another_host_oddly_gets_no_proof(
    server: OAuthTestServer, key: DPoPKey, form: str
) -> None:
    """The hop's URL is built by requests' own steps: a ``////host`` Location reaches that
    host, without the token, and so without a proof (an outside review got one sent)."""
    with RawServer(lambda request: [(0, raw_response(200, b"{}"))],
                   host="127.0.0.2") as other:
        host = other.url("").split("//")[1].rstrip("/")
        target = form.format(host=host)
        answer = requests.get(server.url("/redirect"), params={"to": target},
                              auth=auth_for(server, key))
    assert answer.status_code == 200 and other.requests, answer.url
    for request in other.requests:
        assert "authorization" not in request.headers and "dpop" not in request.headers


def test_a_bearer_replacement_goes_without_the_old_proof(key: DPoPKey) -> None:
    """A DPoP token refused, the endpoint now issues Bearer (RFC 9449 §5): the retry carries
    no proof, and neither does a redirect answering it (an outside review saw the rejected
    token's proof replayed with the Bearer token, and sent on to another host)."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as server, RawServer(
            lambda request: [(0, raw_response(200, b"{}"))], host="127.0.0.2") as other:
        auth = auth_for(server, key)
        assert requests.get(server.resource_url, auth=auth).status_code == 200
        server.revoke_all()
        server.dpop = False  # from now on: unbound Bearer tokens
        answer = requests.get(server.url("/resource/away"), auth=auth)
        assert answer.status_code == 200 and auth.token is not None
        assert auth.token.token_type == "Bearer"
        assert "DPoP" not in answer.request.headers
        server.revoke_all()
        hop = requests.get(server.url("/redirect"), params={"to": other.url("/x")},
                           auth=auth)
        assert hop.status_code == 200
    assert all("dpop" not in r.headers for r in other.requests)


def test_user_info_in_the_url_stays_out_of_the_proof(server: OAuthTestServer,
                                                     key: DPoPKey) -> None:
    """htu is the target URI, which has no user info (RFC 9110 §7.1): a password in the
    URL is not signed into a proof the server may log."""
    url = server.resource_url.replace("http://", "http://alice:hunter2@")
    assert requests.get(url, auth=auth_for(server, key)).status_code == 200
    (proof,) = proofs_at(server, "resource")
    assert proof.htu == server.resource_url and "hunter2" not in proof.htu


def test_an_upper_case_token_url_still_finds_its_nonce(key: DPoPKey) -> None:
    """The token endpoint's nonce is kept under its normalized origin: a token URL written
    in upper case works with a server that requires nonces."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_nonce=True) as server:
        loud = server.token_url.replace("http://127.0.0.1", "HTTP://127.0.0.1")
        auth = ClientCredentialsAuth(loud, CLIENT_ID, CLIENT_SECRET, dpop=key, retries=0)
        auth.fetch_token()
        auth.fetch_token()
        assert server.token_requests == 3


def test_logs_show_requests_without_user_info_or_query(
    server: OAuthTestServer, key: DPoPKey, caplog: pytest.LogCaptureFixture
) -> None:
    """The retry's log lines name the request by its target URI: a password in the URL or
    a key in its query is not logged."""
    url = server.url("/unauthorized").replace("http://", "http://alice:hunter2@")
    with caplog.at_level(logging.DEBUG, "requests_oauthcc"):
        requests.get(url, params={"api_key": "k-123"}, auth=auth_for(server, key))
    assert "retrying once with a new token" in caplog.text
    assert "hunter2" not in caplog.text and "k-123" not in caplog.text


@pytest.mark.parametrize("dpop", [True, False], ids=["dpop", "bearer"])
def test_a_hop_to_an_origin_not_allowed_carries_neither_token_nor_proof(
    server: OAuthTestServer, key: DPoPKey, dpop: bool, tmp_path: Path
) -> None:
    """requests keeps Authorization from http:80 to https:443 on one host, so a redirect
    there took the token past allowed_origins; the hook now removes it (and the proof), and
    a 401 from there costs no token (an outside review saw two, each with a proof)."""
    pki = make_pki(tmp_path, server_ips=("127.0.0.5",))
    refuse = raw_response(401, b"{}", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    with contextlib.ExitStack() as stack:
        try:  # the case needs the default ports: requests keeps the token across them
            other = stack.enter_context(RawServer(
                lambda request: [(0, refuse)], host="127.0.0.5", port=443, context=_tls(pki)))
            entry = stack.enter_context(RawServer(lambda request: [(0, raw_response(
                301, b"", {"Location": "https://127.0.0.5/sec"}))], host="127.0.0.5", port=80))
        except OSError as exc:
            missing(f"binding 127.0.0.5:80 and :443 ({exc.strerror}; run as root)")
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                     dpop=key if dpop else None, retries=0,
                                     allowed_origins=["http://127.0.0.5"])
        answer = requests.get("http://127.0.0.5/start", auth=auth, verify=pki.ca)
    assert answer.status_code == 401
    assert "authorization" in entry.requests[0].headers
    (hop,) = other.requests
    assert "authorization" not in hop.headers and "dpop" not in hop.headers
    assert server.token_requests == 1


def _tls(pki: Pki) -> Any:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


def test_a_hops_proof_names_the_url_as_sent(server: OAuthTestServer,
                                            key: DPoPKey) -> None:
    """urllib3 percent-encodes what requests leaves in a Location (``[``, ``]``): the hop's
    proof names the URL as sent, so the server accepts it."""
    answer = requests.get(server.url("/redirect"), params={"to": "/resource/a[1]"},
                          auth=auth_for(server, key))
    assert answer.status_code == 200, answer.headers
    (hop,) = proofs_at(server, "resource")
    assert hop.htu == server.url("/resource/a%5B1%5D")
