"""FakeIssuer (requests_oauthcc/testing/platform.py): discovery and JWKS, minted tokens, key
rotation, the GitHub Actions ID-token endpoint and kubelet-style projected token files,
all over real loopback HTTP and real files."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from requests_oauthcc.testing import FakeIssuer, ProjectedToken

from .keys import jwk_thumbprint


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    with FakeIssuer() as fake:
        yield fake


def verified(issuer: FakeIssuer, token: str, audience: str) -> dict[str, Any]:
    """The token's claims, verified with the key its kid names in the JWKS as served."""
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = requests.get(issuer.jwks_uri, timeout=10).json()
    jwk = next(key for key in jwks["keys"] if key["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]],
                                        audience=audience, issuer=issuer.url)
    return claims


# -- discovery, JWKS, minting ---------------------------------------------------------


def test_discovery_document_names_the_issuer_and_its_jwks(issuer: FakeIssuer) -> None:
    """The well-known document has the issuer's own URL and a jwks_uri serving its public
    key with kid, alg and use, and no private member."""
    document = requests.get(issuer.url + "/.well-known/openid-configuration", timeout=10)
    assert document.status_code == 200
    assert document.json()["issuer"] == issuer.url
    assert document.json()["jwks_uri"] == issuer.jwks_uri
    keys = requests.get(document.json()["jwks_uri"], timeout=10).json()["keys"]
    assert [(key["kid"], key["alg"], key["use"], key["kty"]) for key in keys] == [
        (issuer.kid, "RS256", "sig", "RSA")]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])
    assert keys[0]["kid"] == jwk_thumbprint(keys[0])  # the kid is the RFC 7638 thumbprint
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


def test_an_issuer_path_is_part_of_the_issuer_and_its_well_known_paths() -> None:
    """issuer_path="tenant/v2.0" gives iss http://127.0.0.1:PORT/tenant/v2.0, discovered
    under that path (OpenID Connect Discovery §4); the root has no document."""
    with FakeIssuer(issuer_path="tenant/v2.0") as issuer:
        assert issuer.url.endswith("/tenant/v2.0")
        document = requests.get(issuer.url + "/.well-known/openid-configuration", timeout=10)
        assert document.json()["issuer"] == issuer.url
        root = requests.get(issuer.base_url + "/.well-known/openid-configuration", timeout=10)
        assert root.status_code == 404
        assert verified(issuer, issuer.mint("s", "aud"), "aud")["iss"] == issuer.url


def test_minted_token_has_every_claim_and_verifies_with_the_published_key(
    issuer: FakeIssuer,
) -> None:
    """mint() signs RS256 with the current kid: iss, sub, aud, iat, nbf, exp (lifetime
    seconds later), a fresh jti; extra claims are added and may replace the defaults."""
    token = issuer.mint("system:serviceaccount:ns:app", "https://as/token", lifetime=120,
                        kubernetes_io={"namespace": "ns"})
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"], header["typ"]) == ("RS256", issuer.kid, "JWT")
    claims = verified(issuer, token, "https://as/token")
    assert claims["sub"] == "system:serviceaccount:ns:app"
    assert claims["aud"] == "https://as/token"
    assert claims["iat"] == claims["nbf"] and claims["exp"] - claims["iat"] in (119, 120, 121)
    assert claims["kubernetes_io"] == {"namespace": "ns"}
    other = jwt.decode(issuer.mint("s", ["a", "b"], iss="https://elsewhere"),
                       options={"verify_signature": False})
    assert other["iss"] == "https://elsewhere" and other["aud"] == ["a", "b"]
    assert other["jti"] != claims["jti"]


def test_an_es256_issuer_publishes_an_ec_key() -> None:
    """alg="ES256": a P-256 key in the JWKS, tokens signed ES256 that verify with it."""
    with FakeIssuer(alg="ES256") as issuer:
        key = issuer.jwks()["keys"][0]
        assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
        token = issuer.mint("s", "aud")
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        assert verified(issuer, token, "aud")["sub"] == "s"
    with pytest.raises(ValueError, match="HS256"):
        FakeIssuer(alg="HS256")


def test_rotate_key_keeps_the_old_key_published_unless_told(issuer: FakeIssuer) -> None:
    """After rotate_key() tokens carry the new kid; the old token still verifies against
    the JWKS, which lists both keys; rotate_key(keep_old=False) publishes the new only."""
    old_kid = issuer.kid
    before = issuer.mint("s", "aud")
    new_kid = issuer.rotate_key()
    after = issuer.mint("s", "aud")
    assert new_kid == issuer.kid != old_kid
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert [key["kid"] for key in issuer.jwks()["keys"]] == [old_kid, new_kid]
    assert verified(issuer, before, "aud")["sub"] == verified(issuer, after, "aud")["sub"]
    last = issuer.rotate_key(alg="ES256", keep_old=False)
    assert [key["kid"] for key in issuer.jwks()["keys"]] == [last]
    assert jwt.get_unverified_header(issuer.mint("s", "aud"))["alg"] == "ES256"


def test_repr_shows_no_key_and_no_request_token(issuer: FakeIssuer, tmp_path: Path) -> None:
    """Neither the issuer's repr nor a projected file's shows a secret or a token."""
    text = repr(issuer) + repr(issuer.signing_key)
    assert issuer.github_request_token not in text
    assert "PRIVATE" not in text and "private=" not in text
    projected = issuer.project(tmp_path, "s", "aud")
    assert projected.read() not in repr(projected) and str(projected.path) in repr(projected)


# -- GitHub Actions ---------------------------------------------------------------------


def github(issuer: FakeIssuer, token: str | None, audience: str | None = None,
           scheme: str = "Bearer") -> requests.Response:
    url = issuer.github_request_url + (f"&audience={audience}" if audience else "")
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return requests.get(url, headers=headers, timeout=10)


def test_environ_has_the_two_actions_variables(issuer: FakeIssuer) -> None:
    """environ() is what a job with id-token: write has: the request URL (carrying
    ?api-version=2.0 already) and the request token."""
    environ = issuer.environ()
    assert set(environ) == {"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"}
    url = environ["ACTIONS_ID_TOKEN_REQUEST_URL"]
    assert url == issuer.github_request_url and url.startswith(issuer.base_url + "/")
    assert parse_qs(urlsplit(url).query) == {"api-version": ["2.0"]}
    assert environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == issuer.github_request_token
    assert len(issuer.github_request_token) >= 32


def test_github_endpoint_answers_the_request_token_with_a_repository_token(
    issuer: FakeIssuer,
) -> None:
    """With the right bearer: 200 {"count", "value"}; the token's sub names the repository
    and ref, its aud defaults to the owner's URL, its lifetime is github_lifetime."""
    answer = github(issuer, issuer.github_request_token)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"count", "value"} and body["count"] == len(body["value"])
    claims = verified(issuer, body["value"], "https://github.com/octo-org")
    assert claims["sub"] == "repo:octo-org/octo-repo:ref:refs/heads/main"
    assert claims["repository"] == "octo-org/octo-repo" and claims["ref"] == "refs/heads/main"
    assert claims["exp"] - claims["iat"] in (299, 300, 301)
    assert issuer.github_requests == 1


def test_github_endpoint_puts_the_audience_asked_for_in_aud(issuer: FakeIssuer) -> None:
    """audience=api://AzureADTokenExchange (appended with &) becomes the token's aud; the
    scheme is case-insensitive, as curl examples send "bearer"."""
    answer = github(issuer, issuer.github_request_token, "api://AzureADTokenExchange",
                    scheme="bearer")
    assert answer.status_code == 200
    claims = verified(issuer, answer.json()["value"], "api://AzureADTokenExchange")
    assert claims["aud"] == "api://AzureADTokenExchange"


def test_github_endpoint_refuses_a_wrong_or_missing_bearer_and_counts_every_request(
    issuer: FakeIssuer,
) -> None:
    """A wrong request token, none, or another scheme: 401 with no token; each request is
    counted in github_requests."""
    refused = [github(issuer, "wrong-token"), github(issuer, None),
               github(issuer, issuer.github_request_token, scheme="Basic")]
    assert [answer.status_code for answer in refused] == [401, 401, 401]
    assert all("value" not in answer.json() for answer in refused)
    assert github(issuer, issuer.github_request_token).status_code == 200
    assert issuer.github_requests == 4


def test_github_endpoint_wants_the_api_version_the_url_carries(issuer: FakeIssuer) -> None:
    """A client that drops the URL's query (api-version=2.0) gets a 400, not a token."""
    url = issuer.github_request_url.partition("?")[0] + "?audience=x"
    answer = requests.get(url, headers={"Authorization": f"Bearer {issuer.github_request_token}"},
                          timeout=10)
    assert answer.status_code == 400 and "value" not in answer.json()


def test_github_lifetime_and_repository_are_settings() -> None:
    """github_lifetime, github_repository and github_ref shape the tokens given out."""
    with FakeIssuer(github_lifetime=60, github_repository="acme/api",
                    github_ref="refs/tags/v1") as issuer:
        value = github(issuer, issuer.github_request_token).json()["value"]
        claims = verified(issuer, value, "https://github.com/acme")
        assert claims["sub"] == "repo:acme/api:ref:refs/tags/v1"
        assert claims["exp"] - claims["iat"] in (59, 60, 61)


# -- projected token files --------------------------------------------------------------


def data_dirs(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory)
                  if name.startswith("..") and name not in ("..data", "..data_tmp"))


def test_projected_file_has_the_kubelet_layout(issuer: FakeIssuer, tmp_path: Path) -> None:
    """<dir>/token -> ..data/token, ..data -> ..<timestamp>, the token in that directory
    with mode 0600, and it is a token for the subject and audience asked for."""
    projected = issuer.project(tmp_path / "sa", "system:serviceaccount:ns:app", "aud")
    assert projected.path == tmp_path / "sa" / "token"
    assert os.readlink(projected.path) == "..data/token"
    target = os.readlink(tmp_path / "sa" / "..data")
    assert data_dirs(tmp_path / "sa") == [target] and target.startswith("..20")
    data = tmp_path / "sa" / target / "token"
    assert data.is_file() and not data.is_symlink()
    assert data.stat().st_mode & 0o777 == 0o600
    claims = verified(issuer, projected.path.read_text(), "aud")
    assert claims["sub"] == "system:serviceaccount:ns:app"


def test_rotation_swaps_the_data_directory_and_removes_the_old_one(
    issuer: FakeIssuer, tmp_path: Path,
) -> None:
    """rotate() returns the new token, which the path then reads; ..data points to a new
    directory and, with grace=0 (the kubelet's way), the replaced one is gone at once;
    rotate(token) writes that text."""
    projected = ProjectedToken(tmp_path, lambda: issuer.mint("s", "aud"),
                               filename="azure-identity-token", grace=0)
    first, first_dir = projected.read(), os.readlink(tmp_path / "..data")
    second = projected.rotate()
    assert second != first and projected.read() == second
    assert projected.path.name == "azure-identity-token"
    assert data_dirs(tmp_path) == [os.readlink(tmp_path / "..data")] != [first_dir]
    assert projected.rotate("not-a-jwt") == "not-a-jwt" == projected.read()
    assert projected.rotations == 2
    assert not os.path.lexists(tmp_path / "..data_tmp")


def test_replaced_directories_stay_for_the_grace_period(tmp_path: Path) -> None:
    """With grace=0.2 a replaced data directory survives rotations within 0.2 s and is
    removed by the first one after."""
    projected = ProjectedToken(tmp_path, lambda: "t", grace=0.2)
    first = os.readlink(tmp_path / "..data")
    projected.rotate()
    second = os.readlink(tmp_path / "..data")
    assert data_dirs(tmp_path) == sorted([first, second])
    time.sleep(0.3)
    projected.rotate()
    assert data_dirs(tmp_path) == sorted([second, os.readlink(tmp_path / "..data")])


def test_a_reader_never_sees_a_missing_or_partial_file_during_rotations(
    issuer: FakeIssuer, tmp_path: Path,
) -> None:
    """A thread reading the path in a tight loop through 50 rotations gets, every time, one
    of the tokens written, whole: no error, no empty or truncated read."""
    projected = issuer.project(tmp_path, "s", "aud")
    written = {projected.read()}
    seen: set[str] = set()
    failures: list[str] = []
    reads = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            try:
                with open(projected.path, encoding="utf-8") as file:
                    text = file.read()
            except OSError as exc:
                failures.append(type(exc).__name__)
                continue
            reads += 1
            seen.add(text)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(50):
            written.add(projected.rotate())
    finally:
        done.set()
        thread.join(10)
    assert failures == []
    assert reads > 50
    assert seen <= written  # every read was a whole token that was written
    assert projected.rotations == 50 and len(written) == 51
    assert os.readlink(tmp_path / "..data") in data_dirs(tmp_path)


def test_projected_token_without_an_issuer(tmp_path: Path) -> None:
    """ProjectedToken takes any minting function, and refuses a filename with a path."""
    counter = iter(range(100))
    projected = ProjectedToken(tmp_path, lambda: f"token-{next(counter)}")
    assert projected.read() == "token-0" and projected.rotate() == "token-1"
    with pytest.raises(ValueError, match="plain file name"):
        ProjectedToken(tmp_path, lambda: "x", filename="../escape")
