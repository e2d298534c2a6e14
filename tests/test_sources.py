"""Credential sources read at each token request: watched files (one rule for secrets,
assertions, keys), private keys that rotate or are encrypted, certificates that rotate."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    CredentialError,
    PrivateKey,
    SecretFile,
)
from requests_oauthcc._watch import WatchedFile
from requests_oauthcc.testing import OAuthTestServer, credential_fingerprint

from .certs import Pki, client_files, issue_client, make_pki, mtls_auth, mtls_server
from .conftest import CLIENT_ID, CLIENT_SECRET, replace_file
from .keys import KeyPair, ec_pair, public_thumbprint, rsa_pair


def aged(path: Path) -> Path:
    """``path`` with times well in the past, so its next change is not "racily" close."""
    os.utime(path, ns=(time.time_ns() - 10**10,) * 2)
    return path


# -- the watched-file rule ----------------------------------------------------------------


def counting(path: Path) -> tuple[WatchedFile[str], list[bytes]]:
    reads: list[bytes] = []

    def parse(data: bytes) -> str:
        reads.append(data)
        if not data.strip():
            raise ValueError("is empty")
        return data.decode()

    return WatchedFile(path, "test file", parse), reads


def test_a_watched_file_is_read_only_when_it_changes(tmp_path: Path) -> None:
    """One stat per use: an unchanged file is not read again; an atomic replace, a rewrite
    in place of the same size within the timestamp granularity, and a touch are seen."""
    path = tmp_path / "f"
    path.write_bytes(b"one")
    watched, reads = counting(aged(path))
    assert [watched.get() for _ in range(5)] == ["one"] * 5 and len(reads) == 1
    replace_file(path, b"two")
    assert watched.get() == "two" and len(reads) == 2
    with open(path, "r+b") as file:  # same inode, same size, at once
        file.write(b"six")
    assert watched.get() == "six"
    assert watched.get() == "six"
    aged(path)
    count = len(reads)
    assert watched.get() == "six" and len(reads) == count + 1  # the times changed: read
    assert watched.get() == "six" and len(reads) == count + 1


def test_a_file_caught_mid_write_is_read_again_until_it_settles(tmp_path: Path) -> None:
    """A writer that truncates then writes: the empty file is looked at again (every
    0.1 s, up to 1 s) and the finished content is used, not an error."""
    path = tmp_path / "f"
    path.write_bytes(b"old")
    watched, _ = counting(aged(path))
    assert watched.get() == "old"
    path.write_bytes(b"")
    timer = threading.Timer(0.3, lambda: path.write_bytes(b"new"))
    started = time.monotonic()  # before the timer: a late main thread cannot shorten it
    timer.start()
    assert watched.get() == "new"
    assert 0.2 < time.monotonic() - started < 5
    timer.join()
    path.write_bytes(b" ")
    started = time.monotonic()
    with pytest.raises(CredentialError, match=f"test file '{path}' is empty"):
        watched.get()
    assert 0.9 < time.monotonic() - started < 5


def test_a_watched_file_fails_as_configuration_when_built_and_credential_later(
        tmp_path: Path) -> None:
    """check() (the constructor's) raises ConfigurationError, get() CredentialError, with
    the path and why; never the content."""
    path = tmp_path / "f"
    watched, _ = counting(path)
    with pytest.raises(ConfigurationError, match="could not be read: No such file"):
        watched.check()
    with pytest.raises(CredentialError, match="could not be read: No such file"):
        watched.get()


def test_secret_files_follow_rotation(server: OAuthTestServer, tmp_path: Path) -> None:
    """SecretFile: the new secret is sent at the next token request after the file is
    replaced; a file that vanishes is a CredentialError, nothing sent."""
    path = tmp_path / "secret"
    path.write_text(CLIENT_SECRET + "\n")
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, SecretFile(path), retries=0)
    assert auth.fetch_token()
    server.registry.secrets[CLIENT_ID] = "rotated-secret-123"
    replace_file(path, b"rotated-secret-123\n")
    assert auth.fetch_token()
    assert server.token_log[-1].client_id == CLIENT_ID
    path.unlink()
    before = server.token_requests
    with pytest.raises(CredentialError, match="client secret file"):
        auth.fetch_token()
    assert server.token_requests == before


# -- private keys -------------------------------------------------------------------------


@pytest.fixture
def keys() -> tuple[KeyPair, KeyPair]:
    return ec_pair(), ec_pair()


def last_assertion_key(server: OAuthTestServer) -> tuple[str | None, str]:
    """The kid and the RFC 7638 thumbprint of the key the server verified the last
    assertion with (it holds one registered key at a time here)."""
    import jwt

    assertion = server.token_log[-1].form["client_assertion"][0]
    return jwt.get_unverified_header(assertion).get("kid"), assertion


def test_a_private_key_file_is_read_again_when_replaced(
        tmp_path: Path, keys: tuple[KeyPair, KeyPair]) -> None:
    """private_key=Path: after the file is replaced, the next assertion is signed with the
    new key, and its kid follows the JWK's."""
    old, new = keys
    path = tmp_path / "key.json"
    path.write_text(json.dumps(old.private_jwk(kid="k-old")))
    with OAuthTestServer({}, client_keys={CLIENT_ID: old.public_pem}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=aged(path),
                                     retries=0)
        assert auth.fetch_token() and last_assertion_key(server)[0] == "k-old"
        server.registry.keys[CLIENT_ID] = new.public_pem
        replace_file(path, json.dumps(new.private_jwk(kid="k-new")).encode())
        assert auth.fetch_token() and last_assertion_key(server)[0] == "k-new"
        assert server.token_log[-1].client_id == CLIENT_ID


def test_a_private_key_callable_and_a_kid_callable_are_asked_at_each_token_request(
        keys: tuple[KeyPair, KeyPair]) -> None:
    """A callable key is loaded again only when it returns something new; a kid callable
    names the current key."""
    current = {"pem": keys[0].private_pem, "kid": "a"}
    with OAuthTestServer({}, client_keys={CLIENT_ID: keys[0].public_pem}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID,
                                     private_key=lambda: current["pem"],
                                     private_key_id=lambda: current["kid"], retries=0)
        assert auth.fetch_token() and last_assertion_key(server)[0] == "a"
        key = auth._options["private_key"]
        assert isinstance(key, PrivateKey)
        assert key.current().key is key.current().key  # not loaded again
        current.update(pem=keys[1].private_pem, kid="b")
        server.registry.keys[CLIENT_ID] = keys[1].public_pem
        assert auth.fetch_token() and last_assertion_key(server)[0] == "b"


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "traditional"])
def test_an_encrypted_key_with_its_password(traditional: bool) -> None:
    """private_key_password= as str, bytes or a callable decrypts an encrypted PEM
    (PKCS #8 and the traditional OpenSSL form); the assertion is accepted."""
    pair = rsa_pair() if traditional else ec_pair()
    pem = pair.encrypted_pem(b"correct horse", traditional)
    with OAuthTestServer({}, client_keys={CLIENT_ID: pair.public_pem}) as server:
        for password in ("correct horse", b"correct horse", lambda: "correct horse"):
            auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=pem,
                                         private_key_password=password)
            assert auth.fetch_token().access_token
        grouped = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=PrivateKey(
            pem, password="correct horse", key_id="k9"))
        assert grouped.fetch_token() and last_assertion_key(server)[0] == "k9"


def test_a_wrong_or_missing_password_names_the_problem_not_the_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong, missing, empty or needless passwords are ConfigurationErrors saying which,
    and the password is in no message, log or repr."""
    pair = ec_pair()
    pem = pair.encrypted_pem(b"s3cret-Pa55word")
    cases: list[tuple[str | bytes, str | None, str]] = [
        (pem, "Wrong-Pa55word-xyz", "not this key's password"),
        (pem, None, r"it is encrypted: give its password \(private_key_password="),
        (pem, "", "the password given is empty"),
        (pair.private_pem.encode(), "Needless-Pa55word", "the key is not encrypted"),
        (json.dumps(pair.private_jwk()), "Needless-Pa55word", "JWK, which is never encrypted"),
    ]
    caplog.set_level(logging.DEBUG)
    for key, password, words in cases:
        with pytest.raises(ConfigurationError, match=words) as caught:
            ClientCredentialsAuth("https://as.example/token", CLIENT_ID, private_key=key,
                                  private_key_password=password)
        assert "Pa55word" not in str(caught.value) + caplog.text
    with pytest.raises(ConfigurationError, match="go with private_key="):
        ClientCredentialsAuth("https://as.example/token", CLIENT_ID, CLIENT_SECRET,
                              private_key_password="x")
    grouped = PrivateKey(pem, password="s3cret-Pa55word", key_id="k")
    assert "Pa55word" not in repr(grouped) and "PRIVATE" not in repr(grouped)


def test_an_encrypted_key_file_rotates_with_a_password_callable(tmp_path: Path) -> None:
    """A key file and a password that rotate together: the callable gives the password
    of whatever key the file now holds."""
    old, new = ec_pair(), ec_pair()
    path = tmp_path / "key.pem"
    path.write_bytes(old.encrypted_pem(b"pw-one"))
    password = {"now": b"pw-one"}
    with OAuthTestServer({}, client_keys={CLIENT_ID: old.public_pem}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=aged(path),
                                     private_key_password=lambda: password["now"], retries=0)
        assert auth.fetch_token()
        server.registry.keys[CLIENT_ID] = new.public_pem
        password["now"] = b"pw-two"
        replace_file(path, new.encrypted_pem(b"pw-two"))
        assert auth.fetch_token()
        assert server.token_log[-1].client_id == CLIENT_ID


def test_a_rotated_key_file_that_does_not_load_fails_unsent(tmp_path: Path) -> None:
    """A key file replaced by something that is no key: after looking again for about a
    second, CredentialError, and no token request is sent with a stale key."""
    pair = ec_pair()
    path = tmp_path / "key.pem"
    path.write_text(pair.private_pem)
    with OAuthTestServer({}, client_keys={CLIENT_ID: pair.public_pem}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=aged(path))
        assert auth.fetch_token()
        replace_file(path, b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        with pytest.raises(CredentialError, match="unreadable PEM"):
            auth.fetch_token()
        assert server.token_requests == 1


def test_public_thumbprint_helper_is_stable() -> None:
    """(Sanity for the fixtures) two keys have different thumbprints."""
    a, b = ec_pair(), ec_pair()
    assert public_thumbprint(a) != public_thumbprint(b)


# -- certificates -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("rotation-pki"))


@pytest.fixture
def mtls(pki: Pki) -> Iterator[OAuthTestServer]:
    with mtls_server(pki) as server:
        yield server


def bound_to(server: OAuthTestServer, auth: ClientCredentialsAuth) -> str:
    """The fingerprint of the certificate the server bound the auth's token to."""
    issued = server.issued_tokens()[auth.token.access_token]  # type: ignore[union-attr]
    return f"cert:{issued.cert_thumbprint}"


def test_a_replaced_certificate_is_used_on_new_connections(
        mtls: OAuthTestServer, pki: Pki, tmp_path: Path) -> None:
    """cert=(cert, key) paths: after both files are replaced, the next token request does
    not reuse a connection opened with the old certificate; the token is bound to the new
    one, and make_session() calls the API with it (RFC 8705 §3)."""
    cert, key = client_files(pki, tmp_path)
    auth = mtls_auth(mtls, pki, aged(cert), aged(key))
    api = auth.make_session()
    assert api.get(mtls.resource_url, verify=pki.ca).status_code == 200
    first = bound_to(mtls, auth)
    assert first == credential_fingerprint(certificate=cert)
    new_cert, new_key = issue_client(pki)
    replace_file(key, new_key)
    replace_file(cert, new_cert)
    auth.fetch_token()
    assert bound_to(mtls, auth) == credential_fingerprint(certificate=new_cert) != first
    response = api.get(mtls.resource_url, verify=pki.ca)
    assert response.status_code == 200 and not response.history


def test_credentials_are_touched_at_token_requests_only(
        server: OAuthTestServer, tmp_path: Path) -> None:
    """Every kind of source (a secret callable, a SecretFile, an assertion file, a key
    file) is read at token requests, never per API request: with the source gone, API calls
    go on with the valid token, and the next token request says what is missing."""
    pair = ec_pair()
    server.registry.keys[CLIENT_ID] = pair.public_pem
    calls: list[int] = []

    def secret() -> str:
        calls.append(1)
        return CLIENT_SECRET

    secret_path, key_path = tmp_path / "secret", tmp_path / "key.pem"
    secret_path.write_text(CLIENT_SECRET)
    key_path.write_text(pair.private_pem)
    auths = {
        "callable": ClientCredentialsAuth(server.token_url, CLIENT_ID, secret),
        "secret file": ClientCredentialsAuth(server.token_url, CLIENT_ID,
                                             SecretFile(secret_path)),
        "key file": ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=key_path),
    }
    with requests.Session() as api:
        for auth in auths.values():
            assert api.get(server.resource_url, auth=auth).status_code == 200
        secret_path.unlink()
        key_path.unlink()
        calls_before = len(calls)
        for _ in range(20):
            for auth in auths.values():
                assert api.get(server.resource_url, auth=auth).status_code == 200
    assert len(calls) == calls_before == 1
    for name in ("secret file", "key file"):
        with pytest.raises(CredentialError, match="could not be read"):
            auths[name].fetch_token()


def test_a_dpop_key_may_be_an_encrypted_pem() -> None:
    """DPoPKey.load takes the password of an encrypted PEM; a wrong one is refused
    without showing it."""
    from requests_oauthcc import DPoPKey

    pair = ec_pair()
    pem = pair.encrypted_pem(b"dpop-Pa55")
    key = DPoPKey.load(pem, password="dpop-Pa55")
    assert key.thumbprint == public_thumbprint(pair)
    with pytest.raises(ConfigurationError, match="not this key's password") as caught:
        DPoPKey.load(pem, password="Wrong-Pa55")
    assert "Pa55" not in str(caught.value)


def test_a_failing_credential_callable_is_a_fetch_failure_not_a_crash() -> None:
    """A secret callable that raises (a vault down) is a CredentialError, chained: while
    the token in hand is still valid it stays in use (the early refresh failed, the API call
    did not), and once it has expired the call raises CredentialError naming the callable."""
    now = [0.0]
    vault_up = [True]

    def secret() -> str:
        if not vault_up[0]:
            raise KeyError("vault sealed")
        return CLIENT_SECRET

    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, token_lifetime=100) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, secret, retries=0,
                                     clock=lambda: now[0])
        with requests.Session() as api:
            assert api.get(server.resource_url, auth=auth).status_code == 200
            vault_up[0] = False
            now[0] = 95.0  # past the refresh time (90% of the life), before the expiry
            assert api.get(server.resource_url, auth=auth).status_code == 200
            now[0] = 101.0
            with pytest.raises(CredentialError, match="client_secret callable raised KeyError"
                               ) as caught:
                api.get(server.resource_url, auth=auth)
    assert isinstance(caught.value.__cause__, KeyError)
    assert server.token_requests == 1


def test_from_env_takes_the_private_key_password(tmp_path: Path) -> None:
    """OAUTH_PRIVATE_KEY_PASSWORD decrypts OAUTH_PRIVATE_KEY_FILE (from_env and the CLI);
    without it the error names both ways to give it."""
    pair = ec_pair()
    path = tmp_path / "key.pem"
    path.write_bytes(pair.encrypted_pem(b"env-Pa55"))
    with OAuthTestServer({}, client_keys={CLIENT_ID: pair.public_pem}) as server:
        env = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID,
               "OAUTH_PRIVATE_KEY_FILE": str(path)}
        with pytest.raises(ConfigurationError, match="OAUTH_PRIVATE_KEY_PASSWORD"):
            ClientCredentialsAuth.from_env(environ=env)
        auth = ClientCredentialsAuth.from_env(
            environ={**env, "OAUTH_PRIVATE_KEY_PASSWORD": "env-Pa55"})
        assert auth.fetch_token() and server.token_log[-1].auth_method == "private_key_jwt"


def test_a_certificate_change_seen_first_by_the_api_session_still_renews_token_connections(
        mtls: OAuthTestServer, pki: Pki, tmp_path: Path) -> None:
    """The files change between a token request and the first API call with its token:
    make_session()'s adapter notices first and opens a connection with the new
    certificate; the 401 (the token is bound to the old one) brings a token request that
    must not reuse the old connection either, so the call ends 200 with a token bound to
    the new certificate."""
    cert, key = client_files(pki, tmp_path)
    auth = mtls_auth(mtls, pki, cert, key)
    api = auth.make_session()
    auth.fetch_token()  # over a connection with the old certificate, kept in the pool
    new_cert, new_key = issue_client(pki)
    replace_file(key, new_key)
    replace_file(cert, new_cert)
    response = api.get(mtls.resource_url, verify=pki.ca)
    assert response.status_code == 200
    assert bound_to(mtls, auth) == credential_fingerprint(certificate=new_cert)
