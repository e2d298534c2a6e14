"""OAuthTestServer speaking DPoP (RFC 9449), driven end to end with plain ``requests`` and
hand-built proofs (tests/dpop_proofs.py): token endpoint (§5, §8), resource (§7, §9)."""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_oauthcc.testing import OAuthTestServer
from requests_oauthcc.testing.dpop import DEFAULT_ALGS, access_token_hash, jwk_thumbprint

from .conftest import CLIENT_ID, CLIENT_SECRET
from .dpop_proofs import ProofKey

ROOT = Path(__file__).resolve().parent.parent
KEY = ProofKey.generate("ES256")
OTHER = ProofKey.generate("EdDSA")
ALGS = " ".join(DEFAULT_ALGS)


def ask_token(server: OAuthTestServer, proof: str | None = None, *,
              url: str | None = None) -> requests.Response:
    headers = {"DPoP": proof} if proof is not None else {}
    return requests.post(url or server.token_url, data={"grant_type": "client_credentials"},
                         auth=(CLIENT_ID, CLIENT_SECRET), headers=headers, timeout=10)


def dpop_token(server: OAuthTestServer, key: ProofKey = KEY) -> str:
    """A DPoP-bound access token for ``key`` (following a nonce challenge if any)."""
    answer = ask_token(server, key.proof("POST", server.token_url))
    if answer.status_code == 400 and answer.json()["error"] == "use_dpop_nonce":
        nonce = answer.headers["DPoP-Nonce"]
        answer = ask_token(server, key.proof("POST", server.token_url, {"nonce": nonce}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    token: str = answer.json()["access_token"]
    return token


def call(server: OAuthTestServer, token: str, proof: str | None, *, scheme: str = "DPoP",
         method: str = "GET", path: str = "/resource/data") -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.request(method, server.url(path), headers=headers, timeout=10)


def resource_proof(server: OAuthTestServer, token: str, key: ProofKey = KEY, *,
                   method: str = "GET", path: str = "/resource/data", **claims: Any) -> str:
    return key.proof(method, server.url(path), {"ath": access_token_hash(token), **claims})


def challenge(response: requests.Response) -> str:
    assert response.status_code == 401, response.text
    return response.headers["WWW-Authenticate"]


# -- token endpoint (RFC 9449 §5, §8) -----------------------------------------------------

def test_a_valid_proof_gets_a_dpop_token_bound_to_its_key(server: OAuthTestServer) -> None:
    """token_type DPoP; the issued token's jkt is the proof key's thumbprint; recorded."""
    answer = ask_token(server, KEY.proof("POST", server.token_url))
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP"
    issued = server.issued_tokens()[answer.json()["access_token"]]
    assert issued.jkt == jwk_thumbprint(KEY.public_jwk())
    [(where, proof)] = server.dpop_proofs
    assert where == "token" and proof.thumbprint == issued.jkt and proof.htm == "POST"
    assert "DPoP-Nonce" not in answer.headers


def test_without_a_proof_tokens_stay_bearer(server: OAuthTestServer) -> None:
    """No DPoP header: a Bearer token with no jkt, as before."""
    answer = ask_token(server)
    assert answer.json()["token_type"] == "Bearer"
    assert server.issued_tokens()[answer.json()["access_token"]].jkt is None


def test_dpop_required_refuses_requests_without_a_proof() -> None:
    """dpop_required: a token request without DPoP header is 400 invalid_dpop_proof."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_required=True) as server:
        answer = ask_token(server)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_dpop_proof"
        assert "DPoP header" in answer.json()["error_description"]
        assert server.issued_tokens() == {}
        assert ask_token(server, KEY.proof("POST", server.token_url)).status_code == 200


@pytest.mark.parametrize("change", ["htm", "htu", "typ", "key", "iat"])
def test_an_invalid_proof_at_the_token_endpoint_is_400(
    server: OAuthTestServer, change: str
) -> None:
    """A proof for GET, for another URL, of the wrong typ, signed by another key than its
    jwk, or stale: 400 invalid_dpop_proof, no token, the request logged unauthenticated."""
    url = server.token_url
    proof = {
        "htm": lambda: KEY.proof("GET", url),
        "htu": lambda: KEY.proof("POST", server.resource_url),
        "typ": lambda: KEY.proof("POST", url, header={"typ": "JWT"}),
        "key": lambda: OTHER.sign(KEY.header(), KEY.claims("POST", url)),
        "iat": lambda: KEY.proof("POST", url, {"iat": 1}),
    }[change]()
    answer = ask_token(server, proof)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_dpop_proof"
    assert proof not in answer.text
    assert server.issued_tokens() == {} and server.dpop_proofs == []
    assert server.token_log[-1].client_id is None


def test_htu_is_the_token_url_as_addressed(server: OAuthTestServer) -> None:
    """Addressed as localhost, the proof must name localhost (the Host header), not the
    server's 127.0.0.1."""
    url = f"http://localhost:{server.port}/token"
    assert ask_token(server, KEY.proof("POST", url), url=url).status_code == 200
    refused = ask_token(server, KEY.proof("POST", server.token_url), url=url)
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_token_endpoint_nonce_flow(nonce_server: OAuthTestServer) -> None:
    """dpop_nonce: no nonce is 400 use_dpop_nonce with DPoP-Nonce; the retry with it gets a
    token and no new nonce."""
    url = nonce_server.token_url
    first = ask_token(nonce_server, KEY.proof("POST", url))
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    assert nonce == nonce_server.token_dpop.nonce()
    second = ask_token(nonce_server, KEY.proof("POST", url, {"nonce": nonce}))
    assert second.status_code == 200 and second.json()["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in second.headers
    assert nonce_server.dpop_proofs[-1][1].nonce == nonce


def test_a_rotated_nonce_is_announced_on_success(nonce_server: OAuthTestServer) -> None:
    """After rotate_dpop_nonces, the old nonce still works and the 200 carries the new one;
    a made-up nonce is use_dpop_nonce."""
    url = nonce_server.token_url
    old = nonce_server.token_dpop.nonce()
    new_token_nonce, new_resource_nonce = nonce_server.rotate_dpop_nonces()
    assert new_token_nonce != old and new_token_nonce != new_resource_nonce
    answer = ask_token(nonce_server, KEY.proof("POST", url, {"nonce": old}))
    assert answer.status_code == 200 and answer.headers["DPoP-Nonce"] == new_token_nonce
    bad = ask_token(nonce_server, KEY.proof("POST", url, {"nonce": "made-up"}))
    assert bad.json()["error"] == "use_dpop_nonce"
    assert bad.headers["DPoP-Nonce"] == new_token_nonce


def test_metadata_and_algs_follow_dpop_algs() -> None:
    """dpop_algs is published as dpop_signing_alg_values_supported and enforced."""
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, dpop_algs=["ES256"]) as server:
        document = requests.get(
            server.url("/.well-known/oauth-authorization-server"), timeout=10).json()
        assert document["dpop_signing_alg_values_supported"] == ["ES256"]
        rsa = ProofKey.generate("PS256")
        answer = ask_token(server, rsa.proof("POST", server.token_url))
        assert answer.json()["error"] == "invalid_dpop_proof"
        token = dpop_token(server)
        assert 'algs="ES256"' in challenge(call(server, token, None))
    with OAuthTestServer() as server:
        assert server.metadata_document()["dpop_signing_alg_values_supported"] == list(
            DEFAULT_ALGS)


# -- resource (RFC 9449 §7, §9) -----------------------------------------------------------

@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_the_resource_accepts_the_right_proof(server: OAuthTestServer, alg: str) -> None:
    """A DPoP token with a proof for this method, URL, token and key: 200, dpop_jkt set."""
    key = KEY if alg == "ES256" else ProofKey.generate(alg)
    token = dpop_token(server, key)
    answer = call(server, token, resource_proof(server, token, key))
    assert answer.status_code == 200, answer.headers
    assert answer.json()["dpop_jkt"] == jwk_thumbprint(key.public_jwk())
    where, proof = server.dpop_proofs[-1]
    assert where == "resource" and proof.ath == access_token_hash(token)
    post = call(server, token, resource_proof(server, token, key, method="POST",
                                                   path="/resource/x?q=1"),
                method="POST", path="/resource/x?q=1")
    assert post.status_code == 200


def test_the_resource_refuses_the_wrong_proofs(server: OAuthTestServer) -> None:
    """Each §4.3/§7.1 violation is a 401 with the right DPoP challenge and algs."""
    token = dpop_token(server)
    url = server.url("/resource/data")
    replayed = resource_proof(server, token)
    assert call(server, token, replayed).status_code == 200
    cases = {
        "no proof": call(server, token, None),
        "other key": call(server, token, resource_proof(server, token, OTHER)),
        "no ath": call(server, token, KEY.proof("GET", url)),
        "wrong ath": call(server, token, KEY.proof("GET", url, {"ath": "x"})),
        "wrong htm": call(server, token, resource_proof(server, token,
                                                             method="POST")),
        "wrong htu": call(server, token, KEY.proof(
            "GET", server.token_url, {"ath": access_token_hash(token)})),
        "replayed": call(server, token, replayed),
    }
    for name, answer in cases.items():
        header = challenge(answer)
        assert header.startswith('DPoP error="invalid_dpop_proof"'), name
        assert f'algs="{ALGS}"' in header, name
        assert token not in header and token not in answer.text, name
        assert answer.json() == {"error": "invalid_dpop_proof"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", "/resource/data")
    connection.putheader("Authorization", f"DPoP {token}")
    for _ in range(2):  # two DPoP header fields: refused even if each is valid
        connection.putheader("DPoP", resource_proof(server, token))
    connection.endheaders()
    two = connection.getresponse()
    assert two.status == 401 and 'error="invalid_dpop_proof"' in two.headers["WWW-Authenticate"]
    connection.close()
    assert server.resource_rejections == len(cases) + 1


def test_token_scheme_mismatches_are_invalid_token(server: OAuthTestServer) -> None:
    """A bound token sent as Bearer (no downgrade, §7.2), an unbound one sent as DPoP, an
    unknown or revoked one: 401 DPoP error="invalid_token"."""
    token = dpop_token(server)
    bearer = ask_token(server).json()["access_token"]
    answers = [
        call(server, token, resource_proof(server, token), scheme="Bearer"),
        call(server, token, None, scheme="Bearer"),
        call(server, bearer, resource_proof(server, bearer)),
        call(server, "unknown", resource_proof(server, "unknown")),
    ]
    server.revoke_all()
    answers.append(call(server, token, resource_proof(server, token)))
    for answer in answers:
        header = challenge(answer)
        assert header.startswith('DPoP error="invalid_token"') and f'algs="{ALGS}"' in header


def test_bearer_tokens_work_as_before(server: OAuthTestServer) -> None:
    """Bearer: 200 with dpop_jkt null (a DPoP header is ignored), the same RFC 6750 401."""
    bearer = ask_token(server).json()["access_token"]
    ok = call(server, bearer, KEY.proof("GET", server.url("/resource/data")),
              scheme="Bearer")
    assert ok.status_code == 200 and ok.json()["dpop_jkt"] is None
    assert challenge(call(server, "nope", None, scheme="Bearer")) == (
        'Bearer realm="resource", error="invalid_token"')
    assert server.dpop_proofs == []


def test_expired_dpop_tokens_keep_their_binding(server: OAuthTestServer) -> None:
    """expire_all keeps jkt; the expired token is then invalid_token."""
    token = dpop_token(server)
    server.expire_all()
    assert server.issued_tokens()[token].jkt == jwk_thumbprint(KEY.public_jwk())
    header = challenge(call(server, token, resource_proof(server, token)))
    assert 'error="invalid_token"' in header


def test_resource_nonce_flow(nonce_server: OAuthTestServer) -> None:
    """dpop_nonce at the resource: 401 use_dpop_nonce with DPoP-Nonce, then 200; the token
    endpoint's nonce is not the resource's; the bearer challenge also offers DPoP."""
    token = dpop_token(nonce_server)
    first = call(nonce_server, token, resource_proof(nonce_server, token))
    assert challenge(first).startswith('DPoP error="use_dpop_nonce"')
    nonce = first.headers["DPoP-Nonce"]
    assert nonce == nonce_server.resource_dpop.nonce() != nonce_server.token_dpop.nonce()
    wrong = call(nonce_server, token, resource_proof(
        nonce_server, token, nonce=nonce_server.token_dpop.nonce()))
    assert 'error="use_dpop_nonce"' in challenge(wrong)
    ok = call(nonce_server, token, resource_proof(nonce_server, token, nonce=nonce))
    assert ok.status_code == 200 and "DPoP-Nonce" not in ok.headers
    _, new = nonce_server.rotate_dpop_nonces()
    rotated = call(nonce_server, token, resource_proof(nonce_server, token, nonce=nonce))
    assert rotated.status_code == 200 and rotated.headers["DPoP-Nonce"] == new
    assert challenge(call(nonce_server, "x", None, scheme="Bearer")) == (
        f'Bearer realm="resource", error="invalid_token", DPoP algs="{ALGS}"')


def test_the_bearer_path_imports_no_pyjwt() -> None:
    """A server answering bearer token and resource requests never imports PyJWT."""
    code = (
        "import sys, requests\n"
        "from requests_oauthcc.testing import OAuthTestServer\n"
        "with OAuthTestServer({'c': 's'}) as server:\n"
        "    t = requests.post(server.token_url, data={'grant_type': 'client_credentials'},\n"
        "                      auth=('c', 's')).json()['access_token']\n"
        "    r = requests.get(server.resource_url, headers={'Authorization': 'Bearer ' + t})\n"
        "    assert r.status_code == 200, r.text\n"
        "print('jwt' in sys.modules, 'cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=60)
    assert out.stdout.split() == ["False", "False"]


def test_a_server_without_dpop_ignores_proofs_and_issues_bearer_tokens() -> None:
    """dpop=False: the proof is ignored, the token is Bearer and unbound, and the metadata
    lists no DPoP algorithm (a server without DPoP support, RFC 9449 §5)."""
    with OAuthTestServer(dpop=False) as server:
        answer = requests.post(server.token_url, data={"grant_type": "client_credentials"},
                               auth=(server.client_id, server.client_secret),
                               headers={"DPoP": KEY.proof("POST", server.token_url)})
        assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
        assert server.issued_tokens()[answer.json()["access_token"]].jkt is None
        assert "dpop_signing_alg_values_supported" not in server.metadata_document()
        assert server.dpop_proofs == []
