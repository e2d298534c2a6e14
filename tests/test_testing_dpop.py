"""The testing kit's DPoP proof checker, one test per rule of RFC 9449 §4.3 and §7.1.

Proofs are built by hand (tests/dpop_proofs.py) with PyJWT and cryptography: each test
shows a proof breaking one rule refused with the right error, next to a valid one accepted.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from requests_oauthcc.testing.dpop import (
    DEFAULT_ALGS,
    CheckedProof,
    DPoPError,
    DPoPProofChecker,
    access_token_hash,
    jwk_thumbprint,
)

from .conftest import FakeClock
from .dpop_proofs import ProofKey, b64url, encode_part

URL = "https://server.example.com/token"
NOW = 1_700_000_000.0
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
    "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
    "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
    "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
KEYS = {alg: ProofKey.generate(alg) for alg in ("ES256", "RS256", "PS256", "EdDSA")}
EC = KEYS["ES256"]


def checker(**options: Any) -> DPoPProofChecker:
    options.setdefault("clock", lambda: NOW)
    return DPoPProofChecker(**options)


def refused(proofs: Any, error: str = "invalid_dpop_proof", *, dpop: DPoPProofChecker | None = None,
            method: str = "POST", url: str = URL, **kwargs: Any) -> DPoPError:
    with pytest.raises(DPoPError) as caught:
        (dpop or checker()).check(proofs, method=method, url=url, **kwargs)
    assert caught.value.error == error, caught.value.description
    return caught.value


def proof(key: ProofKey = EC, htm: str = "POST", htu: str = URL,
          header: dict[str, Any] | None = None, **changes: Any) -> str:
    return key.proof(htm, htu, {"iat": int(NOW), **changes}, header)


# -- helpers -------------------------------------------------------------------------------

def test_thumbprint_is_the_rfc7638_example() -> None:
    """jwk_thumbprint gives RFC 7638 §3.1's value, whatever optional members are present."""
    jwk = {"kty": "RSA", "e": "AQAB", "n": RFC7638_N, "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    with pytest.raises(ValueError):
        jwk_thumbprint({"kty": "RSA", "e": "AQAB"})


def test_access_token_hash_is_the_rfc9449_example() -> None:
    """access_token_hash gives the ath of RFC 9449 §7.1's example token."""
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_only_asymmetric_algorithms_can_be_configured() -> None:
    """none, HS256 or an empty list are refused at construction; the defaults are asymmetric."""
    for algs in (["none"], ["HS256"], ["ES256", "HS512"], []):
        with pytest.raises(ValueError):
            DPoPProofChecker(algs=algs)
    assert not any(a == "none" or a.startswith("HS") for a in DEFAULT_ALGS)


# -- valid proofs --------------------------------------------------------------------------

@pytest.mark.parametrize("alg", sorted(KEYS))
def test_a_valid_proof_is_accepted_for_every_key_type(alg: str) -> None:
    """EC P-256, RSA (RS256, PS256) and Ed25519 proofs pass; the thumbprint is the jwk's."""
    key = KEYS[alg]
    checked = checker().check(proof(key, jti="j-1"), method="POST", url=URL)
    assert isinstance(checked, CheckedProof)
    assert checked.thumbprint == jwk_thumbprint(key.public_jwk())
    assert (checked.jti, checked.htm, checked.htu, checked.iat) == ("j-1", "POST", URL, int(NOW))
    assert checked.nonce is None and checked.ath is None
    assert checked.header["alg"] == alg and checked.claims["jti"] == "j-1"
    assert "jwk" not in repr(checked)


# -- §4.3 rules, one each ------------------------------------------------------------------

def test_missing_or_repeated_dpop_header_is_refused() -> None:
    """Rule 1: no DPoP header, or more than one, is invalid_dpop_proof."""
    refused(None)
    refused([])
    refused([proof(), proof()])
    assert checker().check([proof()], method="POST", url=URL).htm == "POST"


@pytest.mark.parametrize("value", [
    "", "not a jwt", "a.b", "a.b.c.d", "e30.e30", "e30.e30.!!!", "W10.e30.", "e30.W10.",
    b64url(b"{") + ".e30.", "e30.e30.A", encode_part('{"a":1,"a":2}') + ".e30.",
    encode_part("NaN") + ".e30.", "x" * 9000,
])
def test_a_malformed_jws_is_refused(value: str) -> None:
    """Rule 2: not a compact JWS of two JSON objects and base64url parts: invalid_dpop_proof."""
    refused(value)


def test_typ_must_be_dpop_jwt() -> None:
    """Rule 4: typ missing or another value (even "JWT") is refused."""
    refused(EC.sign(EC.header(typ=None), EC.claims("POST", URL, iat=int(NOW))))
    refused(proof(header={"typ": "JWT"}))
    refused(proof(header={"typ": "application/dpop+jwt+x"}))


def test_alg_must_be_asymmetric_and_accepted() -> None:
    """Rule 5: none, HS256, an alg outside ``algs``, or an alg not fitting the key: refused."""
    claims = EC.claims("POST", URL, iat=int(NOW))
    unsigned = f"{encode_part(EC.header(alg='none'))}.{encode_part(claims)}."
    refused(unsigned)
    hs = ProofKey("HS256", b"k" * 32)
    refused(hs.sign(EC.header(alg="HS256"), claims))
    refused(proof(KEYS["RS256"]), dpop=checker(algs=["ES256"]))
    refused(KEYS["RS256"].sign(KEYS["RS256"].header(alg="ES256"), claims))  # RSA key, EC alg
    assert checker(algs=["RS256"]).check(proof(KEYS["RS256"]), method="POST", url=URL)


def test_signature_must_verify_with_the_header_jwk() -> None:
    """Rule 6: a proof signed by another key than its jwk, or with a tampered body: refused."""
    other = ProofKey.generate("ES256")
    refused(other.sign(EC.header(), EC.claims("POST", URL, iat=int(NOW))))
    head, _, sig = proof().split(".")
    tampered = encode_part(EC.claims("GET", URL, iat=int(NOW)))
    refused(f"{head}.{tampered}.{sig}")


def test_jwk_must_be_a_public_key() -> None:
    """Rule 7: a jwk holding the private key (d), or no jwk at all, is refused."""
    refused(EC.sign(EC.header(jwk=EC.private_jwk()), EC.claims("POST", URL, iat=int(NOW))))
    rsa = KEYS["RS256"]
    refused(rsa.sign(rsa.header(jwk=rsa.private_jwk()), rsa.claims("POST", URL, iat=int(NOW))))
    refused(proof(header={"jwk": {**EC.public_jwk(), "k": "AAAA"}}))
    refused(EC.sign(EC.header(jwk=None), EC.claims("POST", URL, iat=int(NOW))))


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_every_required_claim_must_be_present(claim: str) -> None:
    """Rule 3: a proof without jti, htm, htu or iat is refused."""
    refused(EC.proof("POST", URL, {"iat": int(NOW), claim: None}))


@pytest.mark.parametrize("claim,value", [
    ("jti", 7), ("jti", ""), ("htm", ["POST"]), ("htu", {"u": URL}), ("iat", "1700000000"),
    ("iat", True), ("nonce", 5), ("ath", 1),
])
def test_claims_of_the_wrong_type_are_refused(claim: str, value: object) -> None:
    """Rule 3: jti must be a string, htm/htu strings, iat a number (not a bool)."""
    refused(EC.proof("POST", URL, {"iat": int(NOW), claim: value}))


def test_htm_must_match_the_request_method() -> None:
    """Rule 8: a POST proof on a GET request (or "post" for POST) is refused."""
    refused(proof(htm="POST"), method="GET")
    refused(proof(htm="post"))
    assert checker().check(proof(htm="GET"), method="GET", url=URL)


@pytest.mark.parametrize("htu", [
    "https://server.example.com/other", "http://server.example.com/token",
    "https://server.example.com:8443/token", "https://evil.example.com/token",
    "https://server.example.com/token/", "server.example.com/token", "not a url",
    "https://server.example.com:99999/token",
])
def test_htu_must_match_the_request_uri(htu: str) -> None:
    """Rule 9: another path, scheme, port or host (or no URL at all) is refused."""
    refused(proof(htu=htu))


@pytest.mark.parametrize("htu,url", [
    ("HTTPS://Server.Example.COM:443/token", URL),
    ("https://server.example.com/token?x=1#frag", URL),
    (URL, URL + "?query=ignored"),
    ("https://server.example.com/%7Etoken", "https://server.example.com/~token"),
    ("https://server.example.com/a%2fb", "https://server.example.com/a%2Fb"),
    ("http://server.example.com", "http://server.example.com:80/"),
    ("https://server.example.com/x/../token", URL),
])
def test_htu_is_compared_after_rfc3986_normalization(htu: str, url: str) -> None:
    """Rule 9: case, default port, percent-encoding case, empty path, query and fragment do
    not matter (RFC 3986 §6.2.2, §6.2.3)."""
    assert checker().check(proof(htu=htu), method="POST", url=url).htu == htu


def test_iat_must_be_within_max_age_both_ways() -> None:
    """Rule 11: a proof older or further in the future than max_age is refused."""
    refused(proof(iat=int(NOW) - 61))
    refused(proof(iat=int(NOW) + 61))
    refused(proof(iat=1e400))
    assert checker().check(proof(iat=int(NOW) - 59), method="POST", url=URL)
    assert checker().check(proof(iat=int(NOW) + 59), method="POST", url=URL)
    assert checker(max_age=300).check(proof(iat=int(NOW) - 200), method="POST", url=URL)


def test_a_replayed_proof_is_refused() -> None:
    """§11.1: the same jti twice within the window is refused; the first one passes."""
    dpop, value = checker(), proof()
    dpop.check(value, method="POST", url=URL)
    error = refused(value, dpop=dpop)
    assert "replay" in error.description
    refused(proof(jti=json.loads(_payload(value))["jti"]), dpop=dpop)


def test_a_jti_is_forgotten_once_its_proof_is_too_old_anyway() -> None:
    """The replay cache is bounded in time: entries leave after iat + max_age."""
    clock = FakeClock(NOW)
    dpop = DPoPProofChecker(clock=clock)
    for _ in range(50):
        dpop.check(proof(), method="POST", url=URL)
    clock.advance(61)
    dpop.check(proof(iat=int(clock.now)), method="POST", url=URL)
    assert len(dpop._seen) == 1


def test_concurrent_replays_pass_once() -> None:
    """Twenty threads checking one proof at once: exactly one accepted."""
    dpop, value = checker(), proof()
    results: list[str] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        try:
            dpop.check(value, method="POST", url=URL)
            results.append("ok")
        except DPoPError as exc:
            results.append(exc.error)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == ["invalid_dpop_proof"] * 19 + ["ok"]


def _payload(value: str) -> str:
    import base64

    part = value.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


# -- nonces (§8, §9) -----------------------------------------------------------------------

def test_nonce_flow_use_dpop_nonce_then_accepted() -> None:
    """Rule 10: with nonces required, no nonce or an unknown one is use_dpop_nonce; the
    handed-out nonce passes."""
    dpop = checker(require_nonce=True)
    error = refused(proof(), "use_dpop_nonce", dpop=dpop)
    assert "nonce" in error.description
    refused(proof(nonce="made-up"), "use_dpop_nonce", dpop=dpop)
    checked = dpop.check(proof(nonce=dpop.nonce()), method="POST", url=URL)
    assert checked.nonce == dpop.nonce()


def test_an_unknown_nonce_is_refused_even_when_not_required() -> None:
    """A present nonce is checked whatever require_nonce says."""
    dpop = checker()
    refused(proof(nonce="not-from-us"), "use_dpop_nonce", dpop=dpop)
    assert dpop.check(proof(nonce=dpop.nonce()), method="POST", url=URL)


def test_rotation_keeps_the_previous_nonce_for_a_while() -> None:
    """After one rotation the old nonce still passes; after two it is use_dpop_nonce."""
    dpop = checker(require_nonce=True)
    first = dpop.nonce()
    second = dpop.rotate_nonce()
    assert second != first and dpop.nonce() == second
    assert dpop.check(proof(nonce=first), method="POST", url=URL)
    dpop.rotate_nonce()
    refused(proof(nonce=first), "use_dpop_nonce", dpop=dpop)
    assert dpop.check(proof(nonce=second), method="POST", url=URL)


def test_nonces_rotate_by_themselves() -> None:
    """The current nonce changes after 300 seconds of the checker's clock."""
    clock = FakeClock(NOW)
    dpop = DPoPProofChecker(require_nonce=True, clock=clock)
    first = dpop.nonce()
    clock.advance(299)
    assert dpop.nonce() == first
    clock.advance(2)
    assert dpop.nonce() != first


# -- §7.1: with an access token ------------------------------------------------------------

def test_ath_must_be_the_access_token_hash() -> None:
    """Rule 12: with an access token, a missing or wrong ath is refused; the right one passes."""
    token = "an-access-token"
    error = refused(proof(), access_token=token)
    refused(proof(ath=access_token_hash("another-token")), access_token=token)
    assert token not in error.description
    checked = checker().check(proof(ath=access_token_hash(token)), method="POST", url=URL,
                              access_token=token)
    assert checked.ath == access_token_hash(token)


def test_the_key_must_be_the_one_the_token_is_bound_to() -> None:
    """Rule 12: a proof by another key than the token's jkt is refused."""
    jkt = jwk_thumbprint(EC.public_jwk())
    refused(proof(KEYS["EdDSA"]), bound_thumbprint=jkt)
    assert checker().check(proof(), method="POST", url=URL, bound_thumbprint=jkt)


def test_errors_never_repeat_the_proof_or_the_token() -> None:
    """No description holds the proof, its signature or the access token."""
    token = "tok-SECRET-8f3e"
    values = [proof(ath="x"), proof(htu="https://x.example/"), proof(iat=1), "garbage-x." * 3]
    for value in values:
        error = refused(value, access_token=token)
        for text in (error.description, str(error)):
            assert token not in text and value not in text
            assert all(part not in text for part in value.split(".") if part)


# -- hostile input -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
claim_names = st.sampled_from(["jti", "htm", "htu", "iat", "nonce", "ath", "exp"])
header_names = st.sampled_from(["typ", "alg", "jwk", "crit", "kid"])
jwk_like = st.fixed_dictionaries(
    {"kty": st.sampled_from(["EC", "RSA", "OKP", "oct", 1]),
     "crv": st.sampled_from(["P-256", "Ed25519", "P-384", None])},
    optional={"x": st.text(max_size=50), "y": st.text(max_size=50), "n": st.text(max_size=50),
              "e": json_values, "d": st.text(max_size=5)},
)
HOSTILE = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


@HOSTILE
@given(st.one_of(st.text(max_size=300), st.lists(st.text(max_size=50), max_size=3),
                 st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_header_values_only_raise_dpop_error(value: Any) -> None:
    """Any header text (or list of them) is refused with DPoPError, nothing else."""
    with pytest.raises(DPoPError):
        checker().check(value, method="POST", url=URL, access_token="t")


@HOSTILE
@given(
    header=st.dictionaries(header_names, json_values | jwk_like, max_size=5) | json_values,
    claims=st.dictionaries(claim_names, json_values, max_size=7) | json_values,
    signature=st.binary(max_size=80),
    sign=st.booleans(),
)
def test_jwt_shaped_garbage_only_raises_dpop_error(
    header: Any, claims: Any, signature: bytes, sign: bool
) -> None:
    """Three base64url parts of arbitrary JSON, signed or not: only ever DPoPError."""
    if sign and isinstance(header, dict) and isinstance(claims, dict):
        value = EC.sign({**EC.header(), **header}, claims)
    else:
        value = f"{encode_part(header)}.{encode_part(claims)}.{b64url(signature)}"
    with pytest.raises(DPoPError):
        checker().check(value, method="POST", url=URL, access_token="t",
                        bound_thumbprint="x")


@HOSTILE
@given(depth=st.integers(min_value=1, max_value=5000), wide=st.booleans())
def test_deep_or_huge_json_only_raises_dpop_error(depth: int, wide: bool) -> None:
    """Deeply nested or oversized JSON in the header is refused without a RecursionError."""
    body = ("[" * depth + "]" * depth) if not wide else '{"a":"' + "x" * depth * 3 + '"}'
    value = f"{b64url(body.encode())}.e30.AA"
    with pytest.raises(DPoPError):
        checker().check(value, method="POST", url=URL)
