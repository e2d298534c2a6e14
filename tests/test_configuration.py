"""Arguments that cannot work fail in the constructor, as a ConfigurationError saying what
to fix; failures driven by a file at fetch time are OAuthErrors too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    CredentialError,
    Secret,
    SecretFile,
    _watch,
)
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET

MakeAuth = Callable[..., ClientCredentialsAuth]


def session_with(**attributes: Any) -> requests.Session:
    session = requests.Session()
    for name, value in attributes.items():
        setattr(session, name, value)
    return session


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"cert": "/nonexistent/client.pem"}, "cert file (a path to no file; not shown"),
        ({"cert": ("/nonexistent/c.pem", "/nonexistent/k.pem")}, "does not exist"),
        ({"cert": ("a", "b", "c")}, "(certificate, key) pair"),
        ({"cert": 42}, "PEM file path"),
        ({"session": session_with(cert="/nonexistent/c.pem")}, "session.cert file"),
        ({"session": session_with(verify="/nonexistent/ca.pem")}, "session.verify names"),
        ({"timeout": (0, 5)}, "timeout must be positive"),
        ({"timeout": (5, 0)}, "timeout must be positive"),
        ({"timeout": float("nan")}, "timeout"),
        ({"client_secret": SecretFile("/nonexistent/secret")}, "could not be read"),
    ],
)
def test_arguments_that_cannot_work_fail_in_the_constructor(
    make_auth: MakeAuth, options: dict[str, Any], words: str
) -> None:
    """0.2.0 accepted these and then failed every token request (OSError, or a timeout
    error at once); now the constructor says what is wrong."""
    with pytest.raises(ConfigurationError) as caught:
        make_auth(**options)
    assert words in str(caught.value)


def test_a_secret_file_that_is_not_utf8_is_a_configuration_error(
    make_auth: MakeAuth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary or empty secret file is a ConfigurationError in the constructor and a
    CredentialError at a later fetch (the file is re-read for rotation), never a
    UnicodeDecodeError. (A bad file is looked at again for 0.2 s here instead of the 1 s
    SETTLE_SECONDS: what the error is matters, not how long the settling lasts.)"""
    monkeypatch.setattr(_watch, "SETTLE_SECONDS", 0.2)
    path = tmp_path / "secret"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        make_auth(client_secret=SecretFile(path))
    path.write_text(CLIENT_SECRET + "\n")
    auth = make_auth(client_secret=SecretFile(path))
    assert auth.fetch_token().access_token
    path.write_bytes(b"\xc3\x28")
    with pytest.raises(CredentialError, match="not UTF-8"):
        auth.fetch_token()
    path.write_text("  \n")
    with pytest.raises(CredentialError, match="is empty"):
        auth.fetch_token()


def test_a_readable_certificate_path_is_accepted(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """An existing PEM path passes the check (the TLS layer judges its content)."""
    pem = tmp_path / "client.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cert=str(pem), auth_method="client_secret_basic")
    assert auth.fetch_token().access_token


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"client_secret": "Tr0ub4dor&3-horse\udcff"}, "client_secret"),
        ({"client_secret": Secret("Tr0ub4dor&3-horse\udcff")}, "client_secret"),
        ({"client_id": "client\udcff"}, "client_id"),
        ({"scope": "read\udcff"}, "scope"),
        ({"audience": "api\udcff"}, "audience"),
        ({"resource": "https://api.example/\udcff"}, "resource"),
        ({"extra_params": {"k\udcff": "v"}}, "extra_params key"),
        ({"extra_params": {"k": "v\udcff"}}, "extra_params['k']"),
    ],
)
def test_text_that_cannot_be_sent_is_a_configuration_error(
    make_auth: MakeAuth, options: dict[str, Any], name: str
) -> None:
    """A lone surrogate (what Python makes of bytes in the environment or argv that are not
    UTF-8) is a ConfigurationError naming the argument, never quoting it: on 0.2.0 it
    escaped as a UnicodeEncodeError whose repr and args held the whole secret."""
    with pytest.raises(ConfigurationError) as caught:
        make_auth(**options)
    error = caught.value
    assert str(error).startswith(f"{name} is not valid text")
    assert "Tr0ub4dor" not in repr(error) + repr(error.args)
    assert error.__cause__ is None and error.__context__ is None


def test_a_callable_secret_that_cannot_be_sent_is_a_credential_error(
    make_auth: MakeAuth,
) -> None:
    """At fetch time: a callable returning such a secret gives a CredentialError saying
    why, without the secret."""
    auth = make_auth(client_secret=lambda: "Tr0ub4dor&3-horse\udcff")
    with pytest.raises(CredentialError, match="client_secret is not valid text") as caught:
        auth.fetch_token()
    assert "Tr0ub4dor" not in repr(caught.value)


def test_a_secret_file_that_is_not_a_small_regular_file_is_refused_at_once(
    make_auth: MakeAuth, tmp_path: Path
) -> None:
    """A FIFO (which blocked the constructor for ever on 0.2.0's successor), a device that
    never ends (/dev/zero grew memory until it failed) or a huge file: a ConfigurationError
    at once, in the constructor."""
    import os
    import time

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (64 * 1024 + 1))
    for path, words in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                        (huge, "larger than 65536 bytes"), (tmp_path, "not a regular file")):
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match=words):
            make_auth(client_secret=SecretFile(path))
        assert time.monotonic() - started < 5


# -- DPoP from the environment ---------------------------------------------------------------


def test_from_env_reads_the_dpop_key_file_and_algorithm(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """{prefix}DPOP_KEY_FILE (a PEM) binds the auth to that key: the token request carries
    a proof signed by it; {prefix}DPOP_ALG picks the algorithm (PS256 of an RSA key)."""
    from .keys import public_thumbprint, rsa_pair, verified_proof

    pair = rsa_pair()
    pem = tmp_path / "dpop.pem"
    pem.write_text(pair.private_pem)
    env = {"APP_TOKEN_URL": server.token_url, "APP_CLIENT_ID": CLIENT_ID,
           "APP_CLIENT_SECRET": CLIENT_SECRET, "APP_DPOP_KEY_FILE": str(pem),
           "APP_DPOP_ALG": "PS256"}
    auth = ClientCredentialsAuth.from_env("APP_", environ=env, retries=0)
    assert auth._proofs is not None
    assert auth._proofs.key.thumbprint == public_thumbprint(pair)
    auth.fetch_token()
    proof = {k.lower(): v for k, v in server.token_log[-1].headers.items()}["dpop"]
    header, claims = verified_proof(proof)
    assert header["alg"] == "PS256" and claims["htu"] == server.token_url


def test_from_env_dpop_errors_name_the_variable_and_dpop_option_wins(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """A DPOP_ALG without a key file, or a key file that is no key, is a ConfigurationError
    naming the variable (with the prefix); a dpop= option wins and the variables are then
    not read at all."""
    from requests_oauthcc import DPoPKey

    base = {"APP_TOKEN_URL": server.token_url, "APP_CLIENT_ID": CLIENT_ID,
            "APP_CLIENT_SECRET": CLIENT_SECRET}
    with pytest.raises(ConfigurationError, match="APP_DPOP_ALG is set but APP_DPOP_KEY_FILE"):
        ClientCredentialsAuth.from_env("APP_", environ={**base, "APP_DPOP_ALG": "ES256"})
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\xffnot a key")
    broken = {**base, "APP_DPOP_KEY_FILE": str(garbage)}
    with pytest.raises(ConfigurationError, match=r"APP_DPOP_KEY_FILE \(.*garbage'\): DPoP key"):
        ClientCredentialsAuth.from_env("APP_", environ=broken)
    key = DPoPKey.generate("EdDSA")
    auth = ClientCredentialsAuth.from_env("APP_", environ=broken, dpop=key)
    assert auth._proofs is not None and auth._proofs.key == key


@pytest.mark.parametrize("secret", ["s3cr3t-value-0123", "S3CRET-" + "q" * 300],
                         ids=["short", "longer-than-a-file-name"])
def test_a_secret_given_as_the_secret_file_is_never_quoted(secret: str) -> None:
    """OAUTH_CLIENT_SECRET_FILE set to the secret itself: the error does not repeat it (a
    value longer than a file name made pathlib raise an OSError quoting it)."""
    with pytest.raises(ConfigurationError) as caught:
        ClientCredentialsAuth.from_env(environ={
            "OAUTH_TOKEN_URL": "https://auth.example.com/token", "OAUTH_CLIENT_ID": "id",
            "OAUTH_CLIENT_SECRET_FILE": secret})
    assert secret not in str(caught.value) and "qqqqqqqq" not in str(caught.value)
    assert "OAUTH_CLIENT_SECRET_FILE" in str(caught.value)
