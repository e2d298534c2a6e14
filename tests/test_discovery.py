"""from_issuer: RFC 8414 / OIDC discovery, issuer checks, method choice; from_env."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    DiscoveryError,
    InsecureTransportError,
)
from requests_oauthcc.client_auth import ClientCredentials
from requests_oauthcc.discovery import choose_auth_method, metadata_urls
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET
from .keys import rsa_pair
from .rawserver import RawServer, Script, raw_response, trickle_headers


def discovery_server(**kwargs: Any) -> OAuthTestServer:
    return OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, **kwargs).start()


@pytest.fixture
def servers() -> Iterator[list[OAuthTestServer]]:
    started: list[OAuthTestServer] = []
    yield started
    for server in started:
        server.stop()


def test_metadata_urls_follow_rfc8414_and_oidc() -> None:
    """RFC 8414 inserts the well-known segment before the path; OIDC appends it; last, the
    RFC 8414 segment appended to an issuer with a path (issue #11, item 7)."""
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://as.example/tenant/1/") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        "https://as.example/tenant/1/.well-known/openid-configuration",
        "https://as.example/tenant/1/.well-known/oauth-authorization-server",
    ]


@pytest.mark.parametrize("style", ["rfc8414", "oidc"])
@pytest.mark.parametrize("path", ["", "tenant-a", "realms/x"])
def test_from_issuer_finds_the_token_endpoint(
    servers: list[OAuthTestServer], style: str, path: str
) -> None:
    """Both well-known documents, with and without an issuer path, lead to a token."""
    server = discovery_server(metadata=style, issuer_path=path)
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    assert requests.get(server.resource_url, auth=auth, timeout=5).status_code == 200
    assert f"token_url='{server.token_url}'" in repr(auth)


def test_discovery_is_lazy_and_cached(servers: list[OAuthTestServer]) -> None:
    """Nothing is fetched by the constructor; metadata is fetched once for many tokens."""
    server = discovery_server()
    servers.append(server)
    seen: list[str] = []
    token_session = requests.Session()
    token_session.hooks["response"].append(lambda r, **kw: seen.append(r.url))
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET,
                                             session=token_session)
    assert seen == [] and "issuer=" in repr(auth)
    for _ in range(3):
        auth.fetch_token()
    assert [u for u in seen if "well-known" in u] == [
        server.url("/.well-known/oauth-authorization-server")]
    assert server.token_requests == 3


def test_issuer_mismatch_is_refused(servers: list[OAuthTestServer]) -> None:
    """Metadata naming another issuer is a DiscoveryError; no token request is made."""
    server = discovery_server(metadata_overrides={"issuer": "https://evil.example"})
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(DiscoveryError, match=r"evil\.example"):
        auth.fetch_token()
    assert server.token_requests == 0


def test_no_metadata_is_a_discovery_error(servers: list[OAuthTestServer]) -> None:
    """A server with no well-known document: DiscoveryError naming the URLs tried."""
    server = discovery_server(metadata=None)
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(DiscoveryError, match="openid-configuration"):
        auth.fetch_token()


def test_failed_discovery_is_retried_on_the_next_request(
    servers: list[OAuthTestServer],
) -> None:
    """A discovery error is not cached: once the metadata appears, the next call works."""
    server = discovery_server(metadata=None)
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(DiscoveryError):
        auth.fetch_token()
    server.metadata_style = "rfc8414"
    assert auth.fetch_token().access_token


def test_plain_http_token_endpoint_in_metadata_is_refused(
    servers: list[OAuthTestServer],
) -> None:
    """Metadata may not downgrade the token endpoint to plain http on a remote host."""
    server = discovery_server(metadata_overrides={"token_endpoint": "http://as.example/t"})
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(InsecureTransportError):
        auth.fetch_token()


# -- discovery cannot be steered (issue #10, item 2) ---------------------------------------


def metadata_answer(document: object) -> Script:
    """A 200 with ``document`` as its JSON body, whatever the path."""
    yield 0, raw_response(200, json.dumps(document).encode(),
                          {"Content-Type": "application/json"})


def test_a_metadata_redirect_is_not_followed() -> None:
    """A metadata request answered with a redirect to plain http on another host (where
    metadata with the right issuer names that host's token endpoint) is a DiscoveryError
    naming the Location; nothing reaches that host, least of all the secret. (0.2.0
    followed it and posted the secret there.)"""
    elsewhere_document: dict[str, object] = {}
    with RawServer(lambda request: metadata_answer(elsewhere_document),
                   host="127.0.0.2") as elsewhere:
        location = elsewhere.url("/.well-known/oauth-authorization-server")
        redirect = raw_response(302, b"", {"Location": location + "\r\nX-Injected: 1"})
        with RawServer(lambda request: [(0, redirect)]) as issuer:
            elsewhere_document.update(issuer=issuer.base_url,
                                      token_endpoint=elsewhere.url("/token"))
            auth = ClientCredentialsAuth.from_issuer(issuer.base_url, CLIENT_ID, CLIENT_SECRET,
                                                     retries=0, timeout=2)
            with pytest.raises(DiscoveryError, match="never follow redirects") as caught:
                auth.fetch_token()
    message = str(caught.value)
    assert location in message and "\r" not in message and "\n" not in message
    assert elsewhere.requests == []
    assert len(issuer.requests) == 1 and CLIENT_SECRET not in str(issuer.requests)


def test_deeply_nested_metadata_is_a_discovery_error() -> None:
    """Metadata nested 5,000 deep (a few KiB) is refused as not JSON, never a
    RecursionError. (0.2.0: RecursionError.)"""
    with RawServer(lambda request: [(0, raw_response(
            200, b'{"issuer": "x", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}"))]) as server:
        auth = ClientCredentialsAuth.from_issuer(server.base_url, CLIENT_ID, CLIENT_SECRET)
        with pytest.raises(DiscoveryError, match="JSON object"):
            auth.fetch_token()


@pytest.mark.parametrize("declared", [True, False])
def test_metadata_over_one_mib_is_a_discovery_error(declared: bool) -> None:
    """Metadata over 1 MiB, with or without Content-Length, is a DiscoveryError (not an
    InvalidTokenResponseError: 0.2.0 raised the token endpoint's error)."""
    body = b'{"issuer": "' + b"x" * (1 << 20) + b'"}'
    with RawServer(lambda request: [(0, raw_response(200, body, content_length=declared))]
                   ) as server:
        auth = ClientCredentialsAuth.from_issuer(server.base_url, CLIENT_ID, CLIENT_SECRET)
        with pytest.raises(DiscoveryError, match="over 1048576 bytes"):
            auth.fetch_token()


def test_trickled_metadata_is_bounded_by_the_timeout() -> None:
    """A metadata answer trickled a byte every 0.2 s is cut at timeout=1: a DiscoveryError
    with the cause chained, within the timeout plus slack. (0.2.0: 8 s.)"""
    import time

    with RawServer(lambda request: trickle_headers(0.2)) as server:
        auth = ClientCredentialsAuth.from_issuer(server.base_url, CLIENT_ID, CLIENT_SECRET,
                                                 timeout=1)
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match="Timeout") as caught:
            auth.fetch_token()
        assert time.monotonic() - started < 2.5
    assert caught.value.issuer == server.base_url


def test_unreachable_metadata_chains_the_cause(servers: list[OAuthTestServer]) -> None:
    """A metadata request that cannot connect is a DiscoveryError chained to requests'
    error (stripped of its frames)."""
    server = discovery_server()
    issuer = server.issuer
    server.stop()
    auth = ClientCredentialsAuth.from_issuer(issuer, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(DiscoveryError, match="could not reach") as caught:
        auth.fetch_token()
    cause = caught.value.__cause__
    assert isinstance(cause, requests.ConnectionError) and cause.__traceback__ is None


def test_metadata_text_in_messages_is_cleaned(servers: list[OAuthTestServer]) -> None:
    """A mismatched issuer or a bad token_endpoint from the server reaches the message
    without control characters (no forged log lines)."""
    server = discovery_server(metadata_overrides={"issuer": "https://a\nFAKE LOG LINE"})
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(DiscoveryError, match="FAKE LOG LINE") as caught:
        auth.fetch_token()
    assert "\n" not in str(caught.value)
    server.metadata_overrides = {"token_endpoint": "https://as.example/t\r\nX: y"}
    with pytest.raises(DiscoveryError, match="no usable token_endpoint") as caught:
        auth.fetch_token()
    assert "\r" not in str(caught.value) and "\n" not in str(caught.value)


def test_method_choice_prefers_what_the_credentials_allow() -> None:
    """A key picks private_key_jwt; a secret basic, then post; none fitting is an error."""
    key = ClientCredentials(key=object())  # type: ignore[arg-type]
    secret = ClientCredentials(secret="s")
    both = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert choose_auth_method(both, key, "i") == "private_key_jwt"
    assert choose_auth_method(both, secret, "i") == "client_secret_basic"
    assert choose_auth_method(["client_secret_post"], secret, "i") == "client_secret_post"
    assert choose_auth_method(None, secret, "i") == "client_secret_basic"
    with pytest.raises(DiscoveryError, match="none of them"):
        choose_auth_method(["private_key_jwt"], secret, "i")


def test_from_issuer_picks_post_when_basic_is_not_offered(
    servers: list[OAuthTestServer],
) -> None:
    """The server's list decides: only client_secret_post offered -> post is used."""
    server = discovery_server(
        metadata_overrides={"token_endpoint_auth_methods_supported": ["client_secret_post"]})
    servers.append(server)
    ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID, CLIENT_SECRET).fetch_token()
    assert server.token_log[-1].auth_method == "client_secret_post"


def test_from_issuer_with_a_key_uses_private_key_jwt(servers: list[OAuthTestServer]) -> None:
    """Given private_key=, discovery selects private_key_jwt."""
    pair = rsa_pair()
    server = discovery_server(client_keys={CLIENT_ID: pair.public_pem})
    servers.append(server)
    auth = ClientCredentialsAuth.from_issuer(server.issuer, CLIENT_ID,
                                             private_key=pair.private_pem)
    auth.fetch_token()
    assert server.token_log[-1].auth_method == "private_key_jwt"
    assert "private_key_jwt" in repr(auth)


# -- from_env ---------------------------------------------------------------------------


def test_from_env_with_token_url_and_secret_file(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """Variables configure the auth; the secret file is re-read at each token request."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("wrong\n")
    env = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID,
           "OAUTH_CLIENT_SECRET_FILE": str(secret_file), "OAUTH_SCOPE": "read write",
           "OAUTH_AUDIENCE": "aud", "OAUTH_RESOURCE": "https://r1/ https://r2/"}
    auth = ClientCredentialsAuth.from_env(environ=env, retries=0)
    with pytest.raises(requests.RequestException):
        auth.fetch_token()
    secret_file.write_text(CLIENT_SECRET + "\n")  # rotated: picked up without a restart
    auth.fetch_token()
    form = server.token_log[-1].form
    assert form["scope"] == ["read write"] and form["audience"] == ["aud"]
    assert form["resource"] == ["https://r1/", "https://r2/"]
    assert CLIENT_SECRET not in repr(auth)


def test_from_env_with_issuer_and_custom_prefix(servers: list[OAuthTestServer]) -> None:
    """MYAPP_ISSUER discovers the endpoint; MYAPP_AUTH_METHOD is honoured."""
    server = discovery_server()
    servers.append(server)
    env = {"MYAPP_ISSUER": server.issuer, "MYAPP_CLIENT_ID": CLIENT_ID,
           "MYAPP_CLIENT_SECRET": CLIENT_SECRET, "MYAPP_AUTH_METHOD": "client_secret_post"}
    ClientCredentialsAuth.from_env("MYAPP_", environ=env).fetch_token()
    assert server.token_log[-1].auth_method == "client_secret_post"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OAUTH_CLIENT_ID": "c", "OAUTH_CLIENT_SECRET": "s"}, "OAUTH_TOKEN_URL or OAUTH_ISSUER"),
        ({"OAUTH_TOKEN_URL": "https://as/t", "OAUTH_CLIENT_SECRET": "s"}, "OAUTH_CLIENT_ID"),
        ({"OAUTH_TOKEN_URL": "https://as/t", "OAUTH_CLIENT_ID": "c"}, "OAUTH_CLIENT_SECRET"),
        ({"OAUTH_TOKEN_URL": "https://as/t", "OAUTH_ISSUER": "https://as", "OAUTH_CLIENT_ID": "c",
          "OAUTH_CLIENT_SECRET": "s"}, "not both"),
        ({"OAUTH_TOKEN_URL": "https://as/t", "OAUTH_CLIENT_ID": "c",
          "OAUTH_CLIENT_SECRET_FILE": "/nonexistent"}, "OAUTH_CLIENT_SECRET_FILE"),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    """A missing or conflicting variable raises a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=message):
        ClientCredentialsAuth.from_env(environ=env)


def test_from_env_private_key_file(servers: list[OAuthTestServer], tmp_path: Path) -> None:
    """OAUTH_PRIVATE_KEY_FILE selects private_key_jwt with the key from that file."""
    pair = rsa_pair()
    server = discovery_server(client_keys={CLIENT_ID: pair.public_pem})
    servers.append(server)
    key_file = tmp_path / "key.pem"
    key_file.write_text(pair.private_pem)
    env = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID,
           "OAUTH_PRIVATE_KEY_FILE": str(key_file)}
    ClientCredentialsAuth.from_env(environ=env).fetch_token()
    assert server.token_log[-1].auth_method == "private_key_jwt"


def test_an_https_issuer_cannot_send_the_secret_to_a_plain_http_loopback_port(
    tmp_path: Path,
) -> None:
    """The metadata of an https issuer naming a plain-http token endpoint on this host (where
    any local process may listen) is refused: the secret never leaves TLS, and the plain
    server gets no request (0.3.0's first cut let loopback pass)."""
    from .certs import make_pki

    pki = make_pki(tmp_path)
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as plain, OAuthTestServer(
        {CLIENT_ID: CLIENT_SECRET}, certfile=pki.server_cert, keyfile=pki.server_key,
        metadata_overrides={"token_endpoint": plain.token_url},
    ) as issuer, requests.Session() as session:
        session.verify = pki.ca
        auth = ClientCredentialsAuth.from_issuer(issuer.issuer, CLIENT_ID, CLIENT_SECRET,
                                                 session=session)
        with pytest.raises(InsecureTransportError, match="https issuer must name an https"):
            auth.fetch_token()
        assert plain.token_requests == 0
