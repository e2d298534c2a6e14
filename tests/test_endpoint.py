"""The token endpoint: the form, the answer's parsing, and the HTTP exchange."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenResponseError,
    OAuthError,
    Token,
    TokenEndpointConnectionError,
    TokenEndpointError,
    TokenError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from requests_oauthcc.form import grant_parameters
from requests_oauthcc.response import parse_token_response
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock

MakeAuth = Callable[..., ClientCredentialsAuth]


# -- the form -------------------------------------------------------------------------


def test_scope_from_string_or_iterable_is_space_joined() -> None:
    """A scope given as a list and as a messy string both become single-spaced."""
    assert grant_parameters(scope=["read", "write"]) == (("scope", "read write"),)
    assert grant_parameters(scope="  read \t write ") == (("scope", "read write"),)


def test_resource_gives_one_field_each_and_audience_one_field() -> None:
    """RFC 8707: each resource is its own form field; audience is sent as given."""
    fields = grant_parameters(
        audience="https://api", resource=["https://a.example/", "urn:example:b"]
    )
    assert fields == (
        ("audience", "https://api"),
        ("resource", "https://a.example/"),
        ("resource", "urn:example:b"),
    )


def test_extra_params_accept_lists() -> None:
    """extra_params values may be strings or lists of strings."""
    assert grant_parameters(extra_params={"a": "1", "b": ["2", "3"]}) == (
        ("a", "1"), ("b", "2"), ("b", "3"),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": ""}, "scope is empty"),
        ({"scope": ["read", "has space"]}, "without spaces"),
        ({"scope": [1, 2]}, "only strings"),
        ({"resource": "not-absolute"}, "absolute URI"),
        ({"resource": "https://api/#frag"}, "without a fragment"),
        ({"audience": ""}, "audience"),
        ({"extra_params": {"client_secret": "x"}}, "may not set 'client_secret'"),
        ({"extra_params": {"grant_type": "password"}}, "may not set 'grant_type'"),
        ({"extra_params": {"x": 5}}, "string or an iterable"),
    ],
)
def test_bad_grant_parameters_are_configuration_errors(
    kwargs: dict[str, Any], message: str
) -> None:
    """Every bad parameter gets a ConfigurationError saying what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        grant_parameters(**kwargs)


def test_the_server_receives_every_grant_parameter(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """The token request is a POST of grant_type plus all parameters, asking for JSON."""
    auth = make_auth(
        scope=["read", "write"], audience="aud", resource=["https://r1/", "https://r2/"],
        extra_params={"tenant": "t1"},
    )
    auth.fetch_token()
    record = server.token_log[-1]
    assert record.form == {
        "grant_type": ["client_credentials"], "scope": ["read write"], "audience": ["aud"],
        "resource": ["https://r1/", "https://r2/"], "tenant": ["t1"],
    }
    assert record.headers["Accept"] == "application/json"
    assert record.auth_method == "client_secret_basic"


# -- parsing --------------------------------------------------------------------------


def parse(payload: object, **kwargs: Any) -> Token:
    return parse_token_response(payload, issued_at=100.0, **kwargs)


def test_parse_a_full_response() -> None:
    """All RFC 6749 §5.1 fields are read; expiry is absolute on the given clock."""
    token = parse({"access_token": "abc", "token_type": "Bearer", "expires_in": 60,
                   "scope": "read"})
    assert (token.access_token, token.scope, token.expires_at) == ("abc", "read", 160.0)
    assert token.raw["expires_in"] == 60


def test_token_type_is_case_insensitive_and_defaults_to_bearer() -> None:
    """'bearer' is accepted as Bearer; a missing token_type is taken to be Bearer."""
    assert parse({"access_token": "a", "token_type": "bEaReR"}).token_type == "bEaReR"
    assert parse({"access_token": "a"}).authorization == "Bearer a"


def test_expires_in_as_numeric_string_is_accepted() -> None:
    """Some servers send expires_in as a string of digits."""
    assert parse({"access_token": "a", "expires_in": "3600"}).expires_at == 3700.0


def test_missing_expires_in_uses_default_lifetime_or_none() -> None:
    """Without expires_in the token lives until rejected, or default_lifetime when set."""
    assert parse({"access_token": "a"}).expires_at is None
    assert parse({"access_token": "a"}, default_lifetime=30.0).expires_at == 130.0


def test_granted_scope_differing_from_requested_is_recorded() -> None:
    """A different granted scope is kept on the token, not raised."""
    token = parse({"access_token": "a", "scope": "read"}, requested_scope="read write")
    assert token.scope == "read"
    assert parse({"access_token": "a"}, requested_scope="read write").scope == "read write"


def test_scope_as_list_is_joined() -> None:
    """A scope sent as a JSON array of strings is joined with spaces."""
    assert parse({"access_token": "a", "scope": ["x", "y"]}).scope == "x y"


MALFORMED = [
    ([], "expected a JSON object, got an array"),
    ("token", "expected a JSON object, got a string"),
    (None, "expected a JSON object, got null"),
    ({}, "access_token is missing"),
    ({"access_token": ""}, "access_token is empty"),
    ({"access_token": 12}, "not a string"),
    ({"access_token": "has space"}, "cannot go in an HTTP header"),
    ({"access_token": "line\nbreak"}, "cannot go in an HTTP header"),
    ({"access_token": "a", "token_type": "mac"}, "token_type 'mac' is not supported"),
    ({"access_token": "a", "token_type": "DPoP"}, "token_type 'DPoP' is not supported"),
    ({"access_token": "a", "token_type": 5}, "token_type a number"),
    ({"access_token": "a", "expires_in": "abc"}, "not a number of seconds"),
    ({"access_token": "a", "expires_in": -5}, "finite number of seconds, 0 or more"),
    ({"access_token": "a", "expires_in": -0.5}, "finite number of seconds, 0 or more"),
    ({"access_token": "a", "expires_in": math.inf}, "finite number of seconds, 0 or more"),
    ({"access_token": "a", "expires_in": 10**400}, "finite number of seconds, 0 or more"),
    ({"access_token": "a", "token_type": "BearerTokens"}, "'BearerTokens' is not supported"),
    ({"access_token": "a", "expires_in": True}, "got a boolean"),
    ({"access_token": "a", "expires_in": [1]}, "got an array"),
    ({"access_token": "a", "scope": 7}, "scope must be a string"),
]


@pytest.mark.parametrize(("payload", "message"), MALFORMED)
def test_malformed_responses_are_typed_errors(payload: object, message: str) -> None:
    """Each malformed answer is an InvalidTokenResponseError saying what was wrong."""
    with pytest.raises(InvalidTokenResponseError, match=message) as caught:
        parse(payload, token_url="https://as/token")
    assert "https://as/token" in str(caught.value)


def test_error_field_in_a_200_is_a_failure() -> None:
    """A body carrying 'error' is a TokenError even with a token beside it."""
    with pytest.raises(InvalidScopeError):
        parse({"error": "invalid_scope", "access_token": "a"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)
token_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.one_of(st.text(), st.integers(), st.none()),
        "token_type": st.one_of(st.sampled_from(["Bearer", "bearer", "mac"]), json_values),
        "expires_in": st.one_of(st.integers(), st.floats(), st.text(), json_values),
        "scope": json_values,
        "error": json_values,
    },
)


@given(st.one_of(json_values, token_like))
def test_any_json_gives_a_token_or_a_typed_error(payload: object) -> None:
    """Property: any JSON value in -> a valid Token, or one of our typed errors out."""
    try:
        token = parse(payload)
    except (InvalidTokenResponseError, TokenError):
        return
    assert token.access_token and token.authorization.startswith("Bearer ")
    assert token.expires_at is None or token.expires_at > 100.0


# -- the HTTP exchange ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ("invalid_request", InvalidRequestError),
        ("invalid_client", InvalidClientError),
        ("invalid_grant", InvalidGrantError),
        ("unauthorized_client", UnauthorizedClientError),
        ("unsupported_grant_type", UnsupportedGrantTypeError),
        ("invalid_scope", InvalidScopeError),
        ("invalid_target", InvalidTargetError),
        ("vendor_specific_error", TokenError),
    ],
)
@pytest.mark.parametrize("status", [400, 401])
@pytest.mark.parametrize("description", [None, "the reason"])
def test_rfc_errors_map_to_classes_with_their_fields(
    make_auth: MakeAuth, server: OAuthTestServer, error: str, cls: type[TokenError],
    status: int, description: str | None,
) -> None:
    """§5.2 errors raise the class for their code, carrying all fields and the response."""
    body: dict[str, str] = {"error": error, "error_uri": "https://docs/e"}
    if description:
        body["error_description"] = description
    server.queue_response(status, body)
    with pytest.raises(cls) as caught:
        make_auth(retries=3).fetch_token()
    exc = caught.value
    assert type(exc) is cls
    assert (exc.error, exc.error_description, exc.error_uri) == (error, description,
                                                                 "https://docs/e")
    assert exc.status_code == status and exc.response is not None
    assert isinstance(exc, OAuthError) and server.token_url in str(exc)
    assert server.token_requests == 1, "a permanent error is never retried"


def test_unknown_client_gets_invalid_client(make_auth: MakeAuth) -> None:
    """The server's real verdict on a wrong secret surfaces as InvalidClientError."""
    with pytest.raises(InvalidClientError, match="invalid_client"):
        make_auth(client_secret="nope").fetch_token()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(
    make_auth: MakeAuth, server: OAuthTestServer, status: int
) -> None:
    """A 3xx is an error naming the target; the credentials are not re-posted there."""
    server.queue_response(status, headers={"Location": server.url("/token2")})
    with pytest.raises(TokenEndpointError, match="redirect") as caught:
        make_auth().fetch_token()
    assert caught.value.status_code == status
    assert server.token_requests == 1


def test_a_non_json_error_page_is_quoted_briefly(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """A 500 HTML page raises TokenEndpointError with status and a short excerpt."""
    server.queue_response(500, "<html><body>" + "Internal Server Error " * 50 + "</body></html>")
    with pytest.raises(TokenEndpointError) as caught:
        make_auth().fetch_token()
    message = str(caught.value)
    assert "500" in message and "Internal Server Error" in message
    assert len(message) < 400
    assert not isinstance(caught.value, TokenError)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json at all", "not JSON"),
        ("<html>hello</html>", "not JSON"),
        ("", "not JSON \\(no Content-Type, 0 bytes, empty\\)"),
        ("[1, 2]", "got an array"),
        ('"just a string"', "got a string"),
    ],
)
def test_a_200_that_is_not_a_token_object_is_malformed(
    make_auth: MakeAuth, server: OAuthTestServer, body: str, message: str
) -> None:
    """A 200 whose body is not a JSON object raises InvalidTokenResponseError."""
    server.queue_response(200, body)
    with pytest.raises(InvalidTokenResponseError, match=message):
        make_auth().fetch_token()


def test_401_with_basic_challenge_and_no_body(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """A bare 401 (WWW-Authenticate: Basic) is a TokenEndpointError with a hint."""
    server.queue_response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    with pytest.raises(TokenEndpointError, match="check client_id, client_secret"):
        make_auth().fetch_token()


def test_real_server_knobs(session: Any) -> None:
    """Lower-case token_type and string expires_in from a server are handled."""
    with OAuthTestServer(
        {CLIENT_ID: CLIENT_SECRET}, token_type="bearer", expires_in_as_string=True,
        token_lifetime=120, granted_scope="read",
    ) as server:
        clock = FakeClock()
        auth = ClientCredentialsAuth(
            server.token_url, CLIENT_ID, CLIENT_SECRET, scope="read write", clock=clock
        )
        token = auth.fetch_token()
        assert token.expires_at == clock.now + 120
        assert token.scope == "read"
        assert session.get(server.resource_url, auth=auth).status_code == 200


def test_token_delay_slows_every_token_answer(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """The kit's token_delay holds each granted token answer back that long (a slow identity
    provider, as benchmarks/compare.py's latency section needs); the API is not slowed."""
    import time

    server.token_delay = 0.3
    auth = make_auth()
    started = time.monotonic()
    auth.fetch_token()
    assert time.monotonic() - started >= 0.3
    server.token_delay = 0.0
    started = time.monotonic()
    auth.fetch_token()
    assert time.monotonic() - started < 0.3
    assert server.token_requests == 2


def test_body_over_the_cap_is_refused(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """A token response over 1 MiB is an error, never read whole into memory."""
    server.queue_response(200, b"{" + b" " * (2 << 20) + b"}")
    with pytest.raises(InvalidTokenResponseError, match="over 1048576 bytes"):
        make_auth().fetch_token()


def test_connection_refused_is_a_typed_connection_error(server: OAuthTestServer) -> None:
    """An unreachable endpoint raises TokenEndpointConnectionError (also requests')."""
    import requests

    url = server.token_url
    server.stop()
    auth = ClientCredentialsAuth(url, CLIENT_ID, CLIENT_SECRET, retries=0)
    with pytest.raises(TokenEndpointConnectionError, match="could not reach") as caught:
        auth.fetch_token()
    assert isinstance(caught.value, requests.ConnectionError)


def test_a_server_that_never_answers_times_out(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """The default-on timeout ends a hung token request with a typed error."""
    server.queue_response(200, {"access_token": "late"}, delay=2.0)
    with pytest.raises(TokenEndpointConnectionError, match="Timeout"):
        make_auth(timeout=0.3).fetch_token()


def test_errors_carry_a_scrubbed_request(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """The request on an error's response holds neither the secret nor the Basic header."""
    server.queue_response(400, {"error": "invalid_request"})
    with pytest.raises(TokenError) as caught:
        make_auth(auth_method="client_secret_post").fetch_token()
    response = caught.value.response
    assert response is not None and response.request is not None
    assert CLIENT_SECRET not in str(response.request.body)
    assert "Authorization" not in response.request.headers
    assert json.loads(response.text)["error"] == "invalid_request"


def test_secret_echoed_by_the_server_is_redacted(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """A server that echoes the secret back cannot put it into our error message."""
    server.queue_response(400, {"error": "invalid_client",
                                "error_description": f"bad secret {CLIENT_SECRET}"})
    with pytest.raises(InvalidClientError) as caught:
        make_auth().fetch_token()
    assert CLIENT_SECRET not in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value.error_description)
    assert "[redacted]" in str(caught.value)


def test_netrc_does_not_override_client_authentication(
    make_auth: MakeAuth, server: OAuthTestServer, tmp_path: Any, monkeypatch: Any
) -> None:
    """A ~/.netrc entry for the token host never replaces our client credentials."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login intruder password wrong\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    for method in ("client_secret_basic", "client_secret_post"):
        make_auth(auth_method=method).fetch_token()
        assert server.token_log[-1].client_id == CLIENT_ID
        assert server.token_log[-1].auth_method == method


def _as_body(payload: object) -> str:
    if payload == {"access_token": "a", "expires_in": math.inf}:
        return '{"access_token": "a", "expires_in": 1e400}'
    if payload == {"access_token": "a", "expires_in": 10**400}:
        return '{"access_token": "a", "expires_in": 1' + "0" * 400 + "}"
    return json.dumps(payload)


@pytest.mark.parametrize(("payload", "message"), MALFORMED)
def test_malformed_responses_over_http(
    make_auth: MakeAuth, server: OAuthTestServer, session: Any, payload: object, message: str
) -> None:
    """The same matrix sent by the local server ends in the same typed error, from a request."""
    server.queue_response(200, _as_body(payload), headers={"Content-Type": "application/json"})
    with pytest.raises(InvalidTokenResponseError, match=message) as caught:
        session.get(server.resource_url, auth=make_auth())
    assert caught.value.status_code == 200 and caught.value.response is not None


def test_json_that_is_not_utf8_is_refused_whatever_its_depth(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """UTF-16 JSON (which json.loads guesses) slipped past the depth check, which reads
    UTF-8: a body nesting 900 levels deep came back as a Token. JSON that is not UTF-8
    (RFC 8259 §8.1) is now an unusable answer, at any depth."""
    deep = "[" * 900 + "]" * 900
    for document in ('{"access_token": "tok-\u2200", "x": ' + deep + "}",
                     '{"access_token": "tok-utf16"}'):
        server.queue_response(200, document.encode("utf-16-le"),
                              headers={"Content-Type": "application/json"})
        with pytest.raises(InvalidTokenResponseError, match="not JSON"):
            make_auth().fetch_token()


def test_a_body_built_to_slow_the_json_checks_is_refused_promptly(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """'"' followed by escaped quotes made the depth check quadratic (13 s for 64 KB after
    the body was read, beyond any timeout, holding the GIL; about an hour for 1 MiB): a
    1 MiB one now costs well under a second."""
    import time

    body = b'"' + b'\\"' * ((1 << 20) // 2 - 1)
    server.queue_response(200, body, headers={"Content-Type": "application/json"})
    started = time.monotonic()
    with pytest.raises(InvalidTokenResponseError):
        make_auth(timeout=2).fetch_token()
    assert time.monotonic() - started < 10
