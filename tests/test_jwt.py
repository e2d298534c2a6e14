"""private_key_jwt and client_secret_jwt: keys, algorithms, claims, and the real server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from requests_oauthcc import ClientCredentialsAuth, ConfigurationError, InvalidClientError
from requests_oauthcc.testing import OAuthTestServer

from .keys import KeyPair, ec_pair, ed25519_pair, rsa_pair

CLIENT = "jwt-client"
LONG_SECRET = "a-client-secret-long-enough-for-hs256-0123456789"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_key() -> KeyPair:
    return rsa_pair()


@pytest.fixture(scope="module")
def ec_key() -> KeyPair:
    return ec_pair()


@pytest.fixture
def jwt_server(rsa_key: KeyPair) -> Iterator[OAuthTestServer]:
    with OAuthTestServer({CLIENT: LONG_SECRET}, client_keys={CLIENT: rsa_key.public_pem}) as s:
        yield s


def last_assertion(server: OAuthTestServer) -> str:
    form = server.token_log[-1].form
    assert form["client_assertion_type"] == [JWT_BEARER]
    assert form["client_id"] == [CLIENT]
    assert "client_secret" not in form
    return form["client_assertion"][0]


def test_private_key_jwt_assertion_verifies_with_the_public_key(
    jwt_server: OAuthTestServer, rsa_key: KeyPair
) -> None:
    """The assertion is RS256-signed, with iss=sub=client, aud=token URL, jti, iat, short exp."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=rsa_key.private_pem,
                                 private_key_id="key-1")
    auth.fetch_token()
    assertion = last_assertion(jwt_server)
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256" and header["kid"] == "key-1"
    claims = jwt.decode(assertion, rsa_key.public, algorithms=["RS256"],
                        audience=jwt_server.token_url)
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["aud"] == jwt_server.token_url
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["exp"] - claims["iat"] == 60
    assert len(claims["jti"]) >= 20
    assert jwt_server.token_log[-1].auth_method == "private_key_jwt"


def test_each_token_request_gets_a_fresh_assertion(
    jwt_server: OAuthTestServer, rsa_key: KeyPair
) -> None:
    """Never reused: two token requests carry two different jti values."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=rsa_key.private_pem)
    auth.fetch_token()
    first = jwt.decode(last_assertion(jwt_server), options={"verify_signature": False})
    auth.fetch_token()
    second = jwt.decode(last_assertion(jwt_server), options={"verify_signature": False})
    assert first["jti"] != second["jti"]


def test_server_rejects_a_replayed_assertion(
    jwt_server: OAuthTestServer, rsa_key: KeyPair
) -> None:
    """Posting a used assertion again is refused by the local server (jti replay)."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=rsa_key.private_pem)
    auth.fetch_token()
    form = {k: v[0] for k, v in jwt_server.token_log[-1].form.items()}
    response = requests.post(jwt_server.token_url, data=form, timeout=5)
    assert response.status_code == 401
    assert "replayed" in response.json()["error_description"]


def test_assertion_audience_can_be_the_issuer(
    jwt_server: OAuthTestServer, rsa_key: KeyPair
) -> None:
    """assertion_audience= replaces the token URL in aud (some servers want the issuer)."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=rsa_key.private_pem,
                                 assertion_audience=jwt_server.issuer)
    auth.fetch_token()
    claims = jwt.decode(last_assertion(jwt_server), options={"verify_signature": False})
    assert claims["aud"] == jwt_server.issuer


def test_wrong_key_is_rejected_by_the_server(jwt_server: OAuthTestServer) -> None:
    """A key the server does not know gives invalid_client."""
    other = rsa_pair()
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=other.private_pem)
    with pytest.raises(InvalidClientError):
        auth.fetch_token()


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        (lambda: ec_pair(ec.SECP256R1()), "ES256"),
        (lambda: ec_pair(ec.SECP384R1()), "ES384"),
        (lambda: ec_pair(ec.SECP521R1()), "ES512"),
        (ed25519_pair, "EdDSA"),
        (rsa_pair, "RS256"),
    ],
)
def test_default_algorithm_follows_the_key_type(make: Any, alg: str) -> None:
    """RS256 for RSA, ES256/384/512 by curve, EdDSA for Ed25519; the server accepts each."""
    pair: KeyPair = make()
    with OAuthTestServer({}, client_keys={CLIENT: pair.public_pem}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT, private_key=pair.private_pem)
        assert requests.get(server.resource_url, auth=auth, timeout=5).status_code == 200
        assert jwt.get_unverified_header(last_assertion(server))["alg"] == alg


def test_ps256_is_allowed_for_rsa(rsa_key: KeyPair, jwt_server: OAuthTestServer) -> None:
    """signing_alg='PS256' signs with RSASSA-PSS."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=rsa_key.private_pem,
                                 signing_alg="PS256")
    auth.fetch_token()
    assert jwt.get_unverified_header(last_assertion(jwt_server))["alg"] == "PS256"


@pytest.mark.parametrize("form", ["pem-str", "pem-bytes", "path-str", "pathlike", "jwk"])
def test_key_forms(form: str, ec_key: KeyPair, tmp_path: Path) -> None:
    """A PEM string or bytes, a path (str or PathLike) or a JWK dict all work."""
    path = tmp_path / "key.pem"
    path.write_text(ec_key.private_pem)
    key: Any = {
        "pem-str": ec_key.private_pem, "pem-bytes": ec_key.private_pem.encode(),
        "path-str": str(path), "pathlike": path, "jwk": ec_key.private_jwk(kid="jwk-kid"),
    }[form]
    with OAuthTestServer({}, client_keys={CLIENT: ec_key.public_pem}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT, private_key=key)
        auth.fetch_token()
        header = jwt.get_unverified_header(last_assertion(server))
        assert header.get("kid") == ("jwk-kid" if form == "jwk" else None)


def test_server_accepts_a_jwk_registered_key(ec_key: KeyPair) -> None:
    """The server side takes a public JWK too (registration as many servers keep it)."""
    public_jwk = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public, as_dict=True)
    with OAuthTestServer({}, client_keys={CLIENT: public_jwk}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT, private_key=ec_key.private_pem)
        assert auth.fetch_token().access_token


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"private_key": "/nonexistent/key.pem"}, "could not be read"),
        ({"private_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
         "a public key or a certificate, not a private key"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----"},
         "could not be loaded"),
        ({"private_key": {"kty": "RSA", "n": "x"}}, "public JWK"),
        ({"private_key": {"kty": "RSA", "n": "x", "d": "y"}}, "JWK could not be loaded"),
        ({"private_key": 42}, "PEM string or bytes"),
        ({"signing_alg": "ES256"}, "does not fit this key"),
        ({"signing_alg": "HS256"}, "does not fit this key"),
        ({"auth_method": "private_key_jwt", "private_key": None}, "needs private_key"),
        ({"auth_method": "client_secret_jwt", "private_key": None, "signing_alg": "RS256"},
         "does not fit client_secret_jwt"),
    ],
)
def test_bad_key_configuration_is_a_clear_error(
    rsa_key: KeyPair, kwargs: dict[str, Any], message: str
) -> None:
    """Each bad key or algorithm gives a ConfigurationError; no key material in the message."""
    options: dict[str, Any] = {"private_key": rsa_key.private_pem}
    options.update(kwargs)
    secret = LONG_SECRET if options.get("auth_method") == "client_secret_jwt" else None
    with pytest.raises(ConfigurationError, match=message) as caught:
        ClientCredentialsAuth("https://as.example/token", CLIENT, secret, **options)
    assert "PRIVATE KEY" not in str(caught.value).replace("not a PEM private key", "")
    assert rsa_key.private_pem[40:80] not in str(caught.value)


def test_client_secret_jwt_is_hmac_signed_with_the_secret(jwt_server: OAuthTestServer) -> None:
    """HS256 by default; the server verifies with the registered secret."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, LONG_SECRET,
                                 auth_method="client_secret_jwt")
    assert requests.get(jwt_server.resource_url, auth=auth, timeout=5).status_code == 200
    assertion = last_assertion(jwt_server)
    claims = jwt.decode(assertion, LONG_SECRET.encode(), algorithms=["HS256"],
                        audience=jwt_server.token_url)
    assert claims["iss"] == CLIENT and jwt_server.token_log[-1].auth_method == "client_secret_jwt"


def test_client_secret_jwt_hs512(jwt_server: OAuthTestServer) -> None:
    """signing_alg='HS512' is honoured."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, LONG_SECRET,
                                 auth_method="client_secret_jwt", signing_alg="HS512")
    auth.fetch_token()
    assert jwt.get_unverified_header(last_assertion(jwt_server))["alg"] == "HS512"


def test_repr_of_jwt_auth_hides_key_and_assertion(
    jwt_server: OAuthTestServer, rsa_key: KeyPair
) -> None:
    """Neither the key nor the last assertion shows in reprs."""
    auth = ClientCredentialsAuth(jwt_server.token_url, CLIENT, private_key=rsa_key.private_pem)
    auth.fetch_token()
    text = repr(auth) + repr(auth._source)
    assert "private_key_jwt" in repr(auth)
    assert "BEGIN" not in text and last_assertion(jwt_server) not in text


def test_missing_extra_names_it() -> None:
    """Without PyJWT installed, a JWT method fails with an error naming the extra."""
    code = (
        "import sys; sys.modules['jwt'] = None\n"
        "from requests_oauthcc import ClientCredentialsAuth, ConfigurationError\n"
        "try:\n"
        "    ClientCredentialsAuth('https://as/token', 'c', private_key='x')\n"
        "except ConfigurationError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert "pip install 'requests-oauthcc[jwt]'" in out.stdout


def test_a_short_hmac_secret_is_logged_not_raised_when_warnings_are_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """client_secret_jwt with a secret shorter than the hash: PyJWT's warning escaped as a
    non-OAuthError under `-W error`; now the assertion is signed, and one WARNING when the
    auth is built says the secret is weak (RFC 7518 §3.2). (Unit level: the test server's
    own PyJWT would raise the same warning under a process-wide filter.)"""
    import logging
    import warnings

    from requests_oauthcc._jwt import SigningKey, sign_assertion

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assertion = sign_assertion(SigningKey(b"short-secret", "HS256"), client_id=CLIENT,
                                   audience="https://as.example/token", lifetime=60)
    assert assertion.count(".") == 2
    with caplog.at_level(logging.WARNING, logger="requests_oauthcc"):
        ClientCredentialsAuth("https://as.example/token", CLIENT, "short-secret",
                              auth_method="client_secret_jwt")
    assert any("shorter than 256 bits" in r.getMessage() for r in caplog.records)
