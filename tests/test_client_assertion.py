"""client_assertion= (RFC 7521 §4.2, RFC 7523 §2.2): an assertion made elsewhere, from a
file read again when it changes or from a callable, checked for expiry before it is sent."""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    CredentialError,
    FileTokenCache,
)
from requests_oauthcc.sources import AssertionFile
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, replace_file
from .keys import KeyPair, ec_pair

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return ec_pair()


@pytest.fixture
def key_server(pair: KeyPair) -> Iterator[OAuthTestServer]:
    with OAuthTestServer({}, client_keys={CLIENT_ID: pair.public_pem}) as server:
        yield server


def mint(pair: KeyPair, audience: str, *, lifetime: float = 600, subject: str = CLIENT_ID,
         issuer: str = CLIENT_ID) -> str:
    """An assertion as a platform would hand it out (here signed with the client's key, so
    the local server's private_key_jwt check accepts it), unique ``jti``."""
    now = int(time.time())
    return jwt.encode({"iss": issuer, "sub": subject, "aud": audience,
                       "jti": secrets.token_hex(8), "iat": now, "exp": int(now + lifetime)},
                      pair.private, algorithm="ES256")


def test_a_path_is_sent_as_the_client_assertion(key_server: OAuthTestServer, pair: KeyPair,
                                                 tmp_path: Path) -> None:
    """A Path: its JWT goes as client_assertion with the jwt-bearer type and client_id."""
    path = tmp_path / "token"
    assertion = mint(pair, key_server.token_url)
    path.write_text(assertion + "\n")
    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path)
    assert auth.fetch_token().access_token
    record = key_server.token_log[-1]
    assert record.form["client_assertion"] == [assertion]
    assert record.form["client_assertion_type"] == [JWT_BEARER]
    assert record.form["client_id"] == [CLIENT_ID]
    assert record.auth_method == "private_key_jwt"
    assert "Authorization" not in record.headers


def test_without_client_id_the_assertion_alone_names_the_client(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path) -> None:
    """client_id=None with an assertion: no client_id field (RFC 7521 §4.2 makes it
    optional); the server identifies the client by the assertion's sub."""
    auth = ClientCredentialsAuth(key_server.token_url, None,
                                 client_assertion=lambda: mint(pair, key_server.token_url))
    assert auth.fetch_token().access_token
    record = key_server.token_log[-1]
    assert "client_id" not in record.form and record.client_id == CLIENT_ID
    with pytest.raises(ConfigurationError, match="client_id must be"):
        ClientCredentialsAuth(key_server.token_url, None, "secret")
    with pytest.raises(ConfigurationError, match="shared cache needs client_id"):
        ClientCredentialsAuth(key_server.token_url, None, cache=FileTokenCache(tmp_path / "c"),
                              client_assertion=lambda: "x")


def test_a_rotated_file_is_read_again_and_an_unchanged_one_is_not(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path) -> None:
    """The file is read when it changes (atomic replace, or a rewrite in place), at the
    next token request; until then the same assertion is sent."""
    path = tmp_path / "token"
    first = mint(pair, key_server.token_url)
    path.write_text(first)
    os.utime(path, ns=(time.time_ns() - 10**10,) * 2)  # not "racily" fresh
    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path)
    source = auth._source.client_auth.source  # type: ignore[union-attr]
    assert isinstance(source, AssertionFile)
    assert source() == first
    second = mint(pair, key_server.token_url)
    replace_file(path, second)
    assert auth.fetch_token().access_token
    assert key_server.token_log[-1].form["client_assertion"] == [second]
    third = mint(pair, key_server.token_url)
    assert len(third) == len(second)
    with open(path, "r+") as file:  # in place: same inode, same size, maybe the same mtime
        file.write(third)
    assert auth.fetch_token().access_token
    assert key_server.token_log[-1].form["client_assertion"] == [third]


def test_an_expired_assertion_is_read_again_then_refused_unsent(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """An assertion whose exp has passed (or passes within 5 s) is read again; still stale,
    it is not sent: CredentialError saying the platform did not rotate it, no token
    request, the assertion in no message or log."""
    path = tmp_path / "token"
    stale = mint(pair, key_server.token_url, lifetime=3)
    path.write_text(stale)
    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialError, match=r"expires in \d+s.*did not rotate") as caught:
        auth.fetch_token()
    assert key_server.token_requests == 0
    assert stale not in str(caught.value) and stale not in caplog.text
    asked: list[str] = []

    def platform() -> str:  # the second call brings a rotated one
        asked.append("x")
        return mint(pair, key_server.token_url, lifetime=-10 if len(asked) == 1 else 600)

    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=platform)
    assert auth.fetch_token().access_token and len(asked) == 2
    with pytest.raises(CredentialError, match=r"expired \d+s ago"):
        ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=lambda: mint(
            pair, key_server.token_url, lifetime=-100)).fetch_token()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"not-a-jwt", "is not a JWT"),
        (b"a.b.c\xff", "non-ASCII"),
        (b"eyJhbGciOiJub25lIn0.eyJleHAiOiJzb29uIn0.", "exp claim is not a number"),
        (b"e30.bm90IGpzb24.", "payload is not"),
    ],
)
def test_an_unusable_file_is_a_configuration_error_naming_the_problem(
        server: OAuthTestServer, tmp_path: Path, content: bytes, words: str) -> None:
    """Empty, not a JWT, not ASCII, a bad exp: ConfigurationError when configured, saying
    what is wrong and never quoting the content."""
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=words) as caught:
        ClientCredentialsAuth(server.token_url, CLIENT_ID, client_assertion=path)
    assert str(path) in str(caught.value)
    if len(content.strip()) > 3:
        assert content.strip().decode("latin-1") not in str(caught.value)


def test_missing_file_fails_when_configured_and_a_vanished_one_at_token_time(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path) -> None:
    """A missing file is a ConfigurationError in the constructor; one that disappears
    later a CredentialError at the token request, with nothing sent."""
    path = tmp_path / "token"
    with pytest.raises(ConfigurationError, match="could not be read"):
        ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path)
    path.write_text(mint(pair, key_server.token_url))
    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path)
    path.unlink()
    with pytest.raises(CredentialError, match="could not be read: No such file") as caught:
        auth.fetch_token()
    assert repr(str(path)) in str(caught.value)  # it was read before: a path, shown
    assert key_server.token_requests == 0


def test_what_client_assertion_refuses(server: OAuthTestServer, pair: KeyPair,
                                       tmp_path: Path) -> None:
    """A string (it would expire, and a path string is ambiguous), a key besides it, or
    another auth method: ConfigurationError saying what to give."""
    token = mint(pair, server.token_url)
    with pytest.raises(ConfigurationError, match=r"pathlib\.Path") as caught:
        ClientCredentialsAuth(server.token_url, CLIENT_ID,
                              client_assertion=token)  # type: ignore[arg-type]
    assert token not in str(caught.value)
    with pytest.raises(ConfigurationError, match="not both"):
        ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=pair.private_pem,
                              client_assertion=lambda: token)
    with pytest.raises(ConfigurationError, match="auth_method='private_key_jwt'"):
        ClientCredentialsAuth(server.token_url, CLIENT_ID, auth_method="client_secret_basic",
                              client_assertion=lambda: token)


def test_a_callable_returning_garbage_is_a_credential_error(server: OAuthTestServer) -> None:
    """A callable is asked at the token request: a non-str or non-JWT answer is a
    CredentialError, and nothing is sent."""
    for answer, words in ((None, "returned NoneType"), ("secret-ish words", "not a JWT")):
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID,
                                     client_assertion=lambda a=answer: a)
        with pytest.raises(CredentialError, match=words) as caught:
            auth.fetch_token()
        assert "secret-ish" not in str(caught.value)
    assert server.token_requests == 0


def test_the_assertion_is_in_no_repr_log_or_echoed_error(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The assertion is a credential: not in the auth's repr, the logs, or an error whose
    server echoed the request body."""
    path = tmp_path / "token"
    assertion = mint(pair, key_server.token_url)
    path.write_text(assertion)
    caplog.set_level(logging.DEBUG)
    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path,
                                 retries=0)
    key_server.queue_response(400, "invalid_client: we got", echo=True)
    with pytest.raises(requests.RequestException) as caught:
        auth.fetch_token()
    assert caught.value.response is not None
    assert assertion in caught.value.response.text  # the server did echo it
    request = caught.value.response.request
    shown = [repr(auth), str(caught.value), caplog.text, str(request.body)]
    assert "client_assertion=%5Bredacted%5D" in str(request.body)
    assert not any(assertion in text or assertion[-20:] in text for text in shown)


def test_a_file_assertion_pickles_as_its_path(key_server: OAuthTestServer, pair: KeyPair,
                                               tmp_path: Path) -> None:
    """A pickled auth holds the path, not the assertion: the copy reads the file."""
    path = tmp_path / "token"
    assertion = mint(pair, key_server.token_url)
    path.write_text(assertion)
    auth = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, client_assertion=path)
    data = pickle.dumps(auth)
    assert assertion.encode() not in data
    replace_file(path, newer := mint(pair, key_server.token_url))
    assert pickle.loads(data).fetch_token().access_token
    assert key_server.token_log[-1].form["client_assertion"] == [newer]


def test_discovery_chooses_private_key_jwt_for_an_assertion(pair: KeyPair) -> None:
    """from_issuer with client_assertion: the metadata's private_key_jwt is chosen."""
    with OAuthTestServer({}, client_keys={CLIENT_ID: pair.public_pem},
                         metadata_overrides={"token_endpoint_auth_methods_supported": [
                             "client_secret_basic", "private_key_jwt"]}) as server:
        auth = ClientCredentialsAuth.from_issuer(
            server.issuer, CLIENT_ID, client_assertion=lambda: mint(pair, server.token_url))
        assert auth.fetch_token().access_token
        assert server.token_log[-1].auth_method == "private_key_jwt"


def test_shared_caches_key_assertions_by_the_identity_they_carry(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path) -> None:
    """Through a shared cache, auths whose assertions carry the same iss and sub share one
    token across rotations of the assertion; another sub does not get it."""
    cache = FileTokenCache(tmp_path / "cache")

    def make(subject: str) -> Callable[[], str]:
        return lambda: mint(pair, key_server.token_url, subject=subject)

    first = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, cache=cache,
                                  client_assertion=make(CLIENT_ID))
    second = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, cache=cache,
                                   client_assertion=make(CLIENT_ID))
    other = ClientCredentialsAuth(key_server.token_url, CLIENT_ID, cache=cache,
                                  client_assertion=make("someone-else"))
    token = first.fetch_token()
    assert second._holder.get().access_token == token.access_token
    assert key_server.token_requests == 1
    with pytest.raises(requests.RequestException):  # its own request: refused by the server
        other._holder.get()
    assert key_server.token_requests == 2


def test_from_env_and_the_cli_take_an_assertion_file(
        key_server: OAuthTestServer, pair: KeyPair, tmp_path: Path) -> None:
    """OAUTH_CLIENT_ASSERTION_FILE (and --client-assertion-file) give client_assertion a
    path; a value that is no file is refused without quoting it (it may be the JWT)."""
    path = tmp_path / "token"
    path.write_text(mint(pair, key_server.token_url))
    env = {"OAUTH_TOKEN_URL": key_server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID,
           "OAUTH_CLIENT_ASSERTION_FILE": str(path)}
    auth = ClientCredentialsAuth.from_env(environ=env)
    assert auth.fetch_token() and key_server.token_log[-1].auth_method == "private_key_jwt"
    token = mint(pair, key_server.token_url)
    with pytest.raises(ConfigurationError, match="CLIENT_ASSERTION_FILE names") as caught:
        ClientCredentialsAuth.from_env(environ={**env, "OAUTH_CLIENT_ASSERTION_FILE": token})
    assert token not in str(caught.value)
    with pytest.raises(ConfigurationError, match="not both"):
        ClientCredentialsAuth.from_env(environ={**env, "OAUTH_PRIVATE_KEY_FILE": str(path)})
    import subprocess
    import sys

    replace_file(path, mint(pair, key_server.token_url))  # this server refuses a replayed jti
    result = subprocess.run(
        [sys.executable, "-m", "requests_oauthcc", "token", "--token-url", key_server.token_url,
         "--client-id", CLIENT_ID, "--client-assertion-file", str(path),
         "--insecure-allow-http"], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("OAUTH_")})
    assert result.returncode == 0, result.stderr
    assert key_server.token_log[-1].form["client_assertion"] == [path.read_text()]
