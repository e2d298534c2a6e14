"""DPoP (RFC 9449) against oidc-provider, an independently written authorization server,
and a resource server checking proofs with the testing kit's checker (dpop_resource.py).

Every test but the two at a second provider (``narrow``) runs twice: once with nonces
optional, once with nonces required at both the provider (§8) and the resource (§9).
The numbers asserted are HTTP requests counted by the servers themselves: the provider's
``/_stats`` for token requests, the resource's record for API requests. With required
nonces a new auth object's first token fetch costs 2 token requests (a 400
``use_dpop_nonce``, then the token) and its first API call 2 API requests (a 401
``use_dpop_nonce``, then the answer); after that, nothing extra: every response's
``DPoP-Nonce`` is kept for its origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    DiscoveryError,
    DPoPKey,
    InvalidDPoPProofError,
    InvalidGrantError,
)

from ..conftest import in_threads
from .dpop_provider import JWT_RESOURCE, DPoPInterop, running_dpop_provider
from .servers import auth_for, call

NARROW_ALGS = ("ES256", "PS256", "EdDSA")
"""The second provider's proof algorithms: neither RS256 nor ES384."""


@pytest.fixture(scope="module", params=[False, True],
                ids=["nonces-optional", "nonces-required"])
def dpop_servers(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[DPoPInterop]:
    with running_dpop_provider(tmp_path_factory.mktemp("dpop"),
                               require_nonce=request.param) as servers:
        yield servers


@pytest.fixture
def dpop(dpop_servers: DPoPInterop) -> DPoPInterop:
    """The DPoP provider and resource, the resource's record emptied for this test."""
    dpop_servers.resource.reset()
    return dpop_servers


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DPoPInterop]:
    """A DPoP provider (and resource) accepting proofs signed with NARROW_ALGS only."""
    with running_dpop_provider(tmp_path_factory.mktemp("dpop-narrow"), require_nonce=False,
                               algs=NARROW_ALGS) as servers:
        yield servers


def first_fetch(dpop: DPoPInterop) -> int:
    """Token requests of a new auth object's first fetch: 2 when the provider requires a
    nonce it has not given yet (400 use_dpop_nonce, then the token), else 1."""
    return 2 if dpop.require_nonce else 1


def first_call(dpop: DPoPInterop) -> int:
    """API requests of a new auth object's first call: 2 when the resource requires a
    nonce it has not given yet (401 use_dpop_nonce, then the answer), else 1."""
    return 2 if dpop.require_nonce else 1


def bound_thumbprint(dpop: DPoPInterop, access_token: str) -> Any:
    """The ``cnf.jkt`` the provider bound ``access_token`` to: from the JWT's claims, or
    from the provider's introspection of an opaque token."""
    if access_token.count(".") == 2:
        claims = jwt.decode(access_token, options={"verify_signature": False})
        return claims["cnf"]["jkt"]
    info = dpop.resource.introspect(access_token)
    assert info["active"] is True and info["token_type"] == "DPoP"
    return info["cnf"]["jkt"]


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
@pytest.mark.parametrize("role", ["basic", "post", "client_secret_jwt", "private_key_jwt"])
def test_every_client_authentication_method_gets_a_bound_token(
    dpop: DPoPInterop, role: str, token_format: str
) -> None:
    """Each client authentication method gets a DPoP token (token_type DPoP) bound to the
    key (cnf.jkt, in the JWT or at introspection, is the key's thumbprint) which the
    resource takes with a proof; with required nonces, once more at each server."""
    key = DPoPKey.generate()
    before = dpop.token_requests()
    extra = {"resource": JWT_RESOURCE} if token_format == "jwt" else {}
    auth = auth_for(dpop.server, role, dpop=key, **extra)
    body = call(dpop.server, auth)
    assert body["client_id"] == dpop.server.clients[role].client_id
    assert body["format"] == token_format and body["jkt"] == key.thumbprint
    token = auth.token
    assert token is not None and token.raw["token_type"] == "DPoP"
    assert token.authorization.startswith("DPoP ")
    assert bound_thumbprint(dpop, token.access_token) == key.thumbprint
    assert dpop.token_requests() - before == first_fetch(dpop)
    assert dpop.resource.requests_count() == first_call(dpop)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "PS256", "RS256", "EdDSA"])
def test_every_listed_key_algorithm(dpop: DPoPInterop, alg: str) -> None:
    """Keys of every algorithm the provider lists sign proofs both servers accept: the
    resource saw proofs signed with that algorithm, by the key the token is bound to."""
    key = DPoPKey.generate(alg)
    auth = auth_for(dpop.server, "basic", dpop=key)
    assert call(dpop.server, auth)["jkt"] == key.thumbprint
    seen = dpop.resource.seen
    assert [s.alg for s in seen] == [alg] * first_call(dpop)
    assert seen[-1].status == 200


def test_token_requests_without_a_proof_are_refused(dpop: DPoPInterop) -> None:
    """The provider's clients must use DPoP (dpop_bound_access_tokens): without dpop= the
    token request is refused, so the other tests' DPoP tokens are not a courtesy."""
    auth = auth_for(dpop.server, "post", retries=0)
    with pytest.raises(InvalidGrantError):
        auth.fetch_token()


def test_proofs_are_fresh_for_every_request(dpop: DPoPInterop) -> None:
    """24 calls of four methods to URLs with a query and a fragment: each request has its
    own proof (24 distinct jti, plus the nonce retry's), htm its method and htu its URL
    exactly, without query or fragment; with required nonces every proof after the first
    carries the resource's nonce. One token fetch in all, and no extra API request."""
    key = DPoPKey.generate()
    auth = auth_for(dpop.server, "post", dpop=key)
    before = dpop.token_requests()
    methods = ["GET", "POST", "PUT", "DELETE"]
    with requests.Session() as session:
        for i in range(24):
            url = dpop.resource.url(f"/api/items/{i}?page={i}&q=a%20b#part")
            response = session.request(methods[i % 4], url, auth=auth, data=b"x" * i,
                                       timeout=10)
            assert response.status_code == 200, response.text
    seen = dpop.resource.seen
    assert len(seen) == 24 + first_call(dpop) - 1  # the nonce retry is the only extra one
    assert len({s.jti for s in seen}) == len(seen)
    for s in seen:
        assert s.htu == dpop.resource.url(s.path.partition("?")[0])
        assert "?" in s.path and s.htm == s.method
        assert s.ath == seen[0].ath is not None
    assert [s.method for s in seen[first_call(dpop) - 1:]] == [methods[i % 4] for i in range(24)]
    if dpop.require_nonce:
        assert seen[0].nonce is None and seen[0].error == "use_dpop_nonce"
        assert {s.nonce for s in seen[1:]} == {seen[0].nonce_given}
    assert dpop.resource.rejections() == (
        {"use_dpop_nonce": 1} if dpop.require_nonce else {})
    assert dpop.token_requests() - before == first_fetch(dpop)


@pytest.mark.parametrize(("status", "method", "hop_method"),
                         [(302, "GET", "GET"), (303, "POST", "GET"), (307, "POST", "POST")])
def test_each_redirect_hop_has_its_own_proof(
    dpop: DPoPInterop, status: int, method: str, hop_method: str
) -> None:
    """A cold call redirected twice within the resource: every hop's proof names that hop
    (htu its path without the Location's query, htm the method requests follows it with)
    and is new (distinct jti), a 307 keeps the body; with required nonces the first hop is
    sent once more with the nonce, and the hops after it carry it."""
    auth = auth_for(dpop.server, "post", dpop=DPoPKey.generate())
    response = requests.request(method, dpop.resource.url(f"/hop/{status}/2"), auth=auth,
                                data=b"the body", timeout=10)
    assert response.status_code == 200, response.text
    assert [r.status_code for r in response.history] == [status, status]
    seen = dpop.resource.seen
    hops = seen[first_call(dpop) - 1:]
    assert [s.htu for s in hops] == [dpop.resource.url(p) for p in (
        f"/hop/{status}/2", f"/hop/{status}/1", "/api/landed")]
    assert [s.path for s in hops][1:] == [f"/hop/{status}/1?left=1", "/api/landed?from=hop"]
    assert [s.htm for s in hops] == [method, hop_method, hop_method]
    assert [s.status for s in hops] == [status, status, 200]
    assert len({s.jti for s in seen}) == len(seen) == 2 + first_call(dpop)
    if hop_method == "POST":
        assert {s.body for s in seen} == {b"the body"}
    if dpop.require_nonce:
        assert seen[0].error == "use_dpop_nonce"
        assert {s.nonce for s in hops} == {seen[0].nonce_given}


def test_a_redirect_to_another_origin_carries_no_token_and_no_proof(
    dpop: DPoPInterop,
) -> None:
    """A redirect to another origin (localhost for 127.0.0.1): requests drops the token and
    the client drops the proof, so the resource sees neither there; the 401 it answers is
    not retried."""
    auth = auth_for(dpop.server, "post", dpop=DPoPKey.generate())
    response = requests.get(dpop.resource.url("/away"), auth=auth, timeout=10)
    assert response.status_code == 401
    assert [r.status_code for r in response.history] == [302]
    seen = dpop.resource.seen
    assert len(seen) == first_call(dpop) + 1
    assert seen[-2].status == 302 and seen[-2].jti is not None
    assert (seen[-1].path, seen[-1].scheme, seen[-1].jti) == ("/api/away", None, None)


def test_a_resource_that_always_wants_a_new_nonce_gets_one_retry(dpop: DPoPInterop) -> None:
    """A resource answering every request 401 use_dpop_nonce with a fresh nonce: the call
    is sent once more with the nonce given, then that 401 is returned: 2 API requests,
    no token request (the token is not refused)."""
    auth = auth_for(dpop.server, "post", dpop=DPoPKey.generate())
    call(dpop.server, auth)  # a token, and the resource's nonce when it requires one
    dpop.resource.reset()
    dpop.resource.nonce_forever = True
    before = dpop.token_requests()
    response = requests.get(dpop.server.api_url, auth=auth, timeout=10)
    assert response.status_code == 401
    assert 'error="use_dpop_nonce"' in response.headers["WWW-Authenticate"]
    assert [r.status_code for r in response.history] == [401]
    seen = dpop.resource.seen
    assert len(seen) == 2
    assert seen[1].nonce == seen[0].nonce_given is not None
    assert seen[1].jti != seen[0].jti
    assert dpop.resource.rejections() == {"use_dpop_nonce": 2}
    assert dpop.token_requests() == before


def test_thirty_two_cold_threads_make_one_token_fetch(dpop: DPoPInterop) -> None:
    """32 threads sharing one cold auth: one token fetch (1 token request, 2 with required
    nonces), every call answered 200, and no 401 but the resource's nonce requests."""
    auth = auth_for(dpop.server, "post", dpop=DPoPKey.generate())
    before = dpop.token_requests()
    statuses = in_threads(32, lambda: requests.get(dpop.server.api_url, auth=auth,
                                                   timeout=15).status_code)
    assert statuses == [200] * 32
    assert dpop.token_requests() - before == first_fetch(dpop)
    rejected = dpop.resource.rejections()
    assert set(rejected) <= ({"use_dpop_nonce"} if dpop.require_nonce else set())
    assert dpop.resource.requests_count() == 32 + sum(rejected.values())
    assert sum(rejected.values()) <= (32 if dpop.require_nonce else 0)


def test_revocation_is_recovered_with_one_new_token_bound_to_the_same_key(
    dpop: DPoPInterop,
) -> None:
    """An opaque token revoked at the provider: the resource (introspecting) refuses it,
    the call succeeds through one retry with exactly one new token request (the provider's
    nonce is known by then), and the new token is bound to the same key."""
    key = DPoPKey.generate()
    auth = auth_for(dpop.server, "post", dpop=key)
    call(dpop.server, auth)
    assert auth.token is not None
    revoked = auth.token.access_token
    dpop.server.revoke(revoked)
    assert dpop.resource.introspect(revoked) == {"active": False}
    dpop.resource.reset()
    before = dpop.token_requests()
    response = requests.get(dpop.server.api_url, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert [r.status_code for r in response.history] == [401]
    assert dpop.token_requests() - before == 1
    assert dpop.resource.rejections() == {"invalid_token": 1}
    assert dpop.resource.requests_count() == 2
    assert auth.token is not None and auth.token.access_token != revoked
    assert bound_thumbprint(dpop, auth.token.access_token) == key.thumbprint


def test_a_refused_proof_costs_no_new_token(dpop: DPoPInterop) -> None:
    """A resource refusing the proof (401 invalid_dpop_proof: it no longer accepts PS256)
    has not refused the token, and a new token cannot make the proof acceptable: each of 3
    calls returns the 401, the token is kept, and no token request is made."""
    auth = auth_for(dpop.server, "post", dpop=DPoPKey.generate("PS256"))
    call(dpop.server, auth)
    token = auth.token
    dpop.resource.accept_only(["ES256"])
    before = dpop.token_requests()
    for _ in range(3):
        response = requests.get(dpop.server.api_url, auth=auth, timeout=10)
        assert response.status_code == 401
        assert 'error="invalid_dpop_proof"' in response.headers["WWW-Authenticate"]
    assert dpop.token_requests() - before == 0  # it made one per call before the fix
    assert auth.token is token


def test_discovery_keeps_a_listed_algorithm(dpop: DPoPInterop) -> None:
    """from_issuer with an RSA key: RS256, its default, is listed by the provider's metadata
    and stays the proofs' algorithm; the method comes from the metadata too."""
    client = dpop.server.clients["basic"]
    auth = ClientCredentialsAuth.from_issuer(dpop.issuer, client.client_id,
                                             client.client_secret,
                                             dpop=DPoPKey.generate("RS256"))
    assert call(dpop.server, auth)["client_id"] == client.client_id
    assert {s.alg for s in dpop.resource.seen} == {"RS256"}


def test_discovery_switches_an_rsa_key_to_a_listed_algorithm(narrow: DPoPInterop) -> None:
    """A provider listing ES256, PS256 and EdDSA refuses an RS256 proof; through discovery
    the same kind of key signs with PS256 instead, which both servers accept."""
    client = narrow.server.clients["basic"]
    refused = ClientCredentialsAuth(narrow.server.token_url, client.client_id,
                                    client.client_secret, retries=0,
                                    dpop=DPoPKey.generate("RS256"))
    with pytest.raises(InvalidDPoPProofError):
        refused.fetch_token()
    narrow.resource.reset()
    key = DPoPKey.generate("RS256")
    auth = ClientCredentialsAuth.from_issuer(narrow.issuer, client.client_id,
                                             client.client_secret, dpop=key)
    assert call(narrow.server, auth)["jkt"] == key.thumbprint
    assert [s.alg for s in narrow.resource.seen] == ["PS256"]


def test_discovery_refuses_a_key_for_no_listed_algorithm(narrow: DPoPInterop) -> None:
    """An EC P-384 key (ES384 only) with a provider that does not list ES384: a
    DiscoveryError naming the listed algorithms and the key's, and no token request."""
    client = narrow.server.clients["basic"]
    auth = ClientCredentialsAuth.from_issuer(narrow.issuer, client.client_id,
                                             client.client_secret,
                                             dpop=DPoPKey.generate("ES384"))
    before = narrow.token_requests()
    with pytest.raises(DiscoveryError) as caught:
        auth.fetch_token()
    message = str(caught.value)
    assert "ES256, PS256, EdDSA" in message and "ES384" in message
    assert narrow.token_requests() == before


def test_the_resource_checks_what_it_is_given(dpop: DPoPInterop) -> None:
    """The resource is no rubber stamp: the token presented as Bearer, a proof replayed, a
    proof by another key and a proof for another URL are each refused with their error."""
    key = DPoPKey.generate()
    auth = auth_for(dpop.server, "post", dpop=key)
    call(dpop.server, auth)
    assert auth.token is not None
    token = auth.token.access_token
    url = dpop.server.api_url
    nonce = dpop.resource.checker.nonce() if dpop.require_nonce else None

    def send(scheme: str, proof: str) -> str:
        response = requests.get(url, timeout=10, headers={
            "Authorization": f"{scheme} {token}", "DPoP": proof})
        assert response.status_code == 401
        return response.headers["WWW-Authenticate"]

    proof = str(key.proof("GET", url, access_token=token, nonce=nonce))
    assert requests.get(url, timeout=10, headers={
        "Authorization": f"DPoP {token}", "DPoP": proof}).status_code == 200
    assert 'error="invalid_dpop_proof"' in send("DPoP", proof)  # replayed
    assert 'error="invalid_token"' in send("Bearer", str(
        key.proof("GET", url, access_token=token, nonce=nonce)))
    other = DPoPKey.generate().proof("GET", url, access_token=token, nonce=nonce)
    assert 'error="invalid_dpop_proof"' in send("DPoP", str(other))
    elsewhere = key.proof("GET", url + "/other", access_token=token, nonce=nonce)
    assert 'error="invalid_dpop_proof"' in send("DPoP", str(elsewhere))

