"""Fuzzing what a hostile authorization server can send: a Token or an OAuthError, in time.

Token responses go through the real token endpoint (``OAuthTestServer.queue_response``);
metadata documents through a raw loopback server, so that status line, headers and body
are whatever hypothesis draws.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from requests_oauthcc import ClientCredentialsAuth, OAuthError, Token, TokenRetry
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET
from .rawserver import RawRequest, RawServer, Script, raw_response

TIMEOUT = 0.5
POLICY = TokenRetry(total=1, backoff_factor=0.001, backoff_max=0.01, retry_after_max=0.05,
                    deadline=1.0)
BOUND = 3.0
"""Seconds any fuzzed fetch may take: the policy's deadline (or two metadata requests and
a token request of TIMEOUT each) plus generous slack."""

FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
header_values = st.one_of(
    st.sampled_from([
        "120", "0", "²", "-1", "9" * 40, "Wed, 21 Oct 2015 07:28:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT", "application/json", "text/html; charset=utf-8",
        "application/json; charset=utf-16", "gzip", "deflate", "br", "chunked", "identity",
        "http://127.0.0.2:1/elsewhere", "https://as.example/token", "/relative",
    ]),
    st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"),
            max_size=40),
)
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "Location", "Content-Encoding",
                     "Transfer-Encoding", "WWW-Authenticate", "X-Anything"]),
    header_values, max_size=4,
)
statuses = st.one_of(
    st.sampled_from([200, 201, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 429,
                     500, 502, 503, 504]),
    st.integers(100, 599),
)


def nested(depth: int) -> bytes:
    return b'{"access_token": ' + b"[" * depth + b"]" * depth + b"}"


token_like = st.fixed_dictionaries(
    {"access_token": json_values | st.text(max_size=30)},
    optional={"token_type": json_values | st.sampled_from(["Bearer", "bearer", "DPoP", "mac"]),
              "expires_in": json_values | st.sampled_from(["3600", "1e400", "-1", "0"]),
              "scope": json_values, "error": json_values, "error_description": json_values},
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    token_like.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 20_000).map(nested),
    st.just(b"access_token=leaked&token_type=bearer"),
)


# -- token responses -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[OAuthTestServer]:
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as server:
        yield server


def fetch_within_bound(auth: ClientCredentialsAuth) -> object:
    """The token or the OAuthError ``auth`` gives, within BOUND seconds; the auth is closed."""
    started = time.monotonic()
    try:
        outcome: object = auth.fetch_token()
    except OAuthError as exc:
        outcome = exc
    finally:
        auth.close()
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, elapsed
    return outcome


@FUZZ
@given(status=statuses, answer_headers=headers, body=bodies)
def test_any_token_response_gives_a_token_or_an_oauth_error(
    fuzz_server: OAuthTestServer, status: int, answer_headers: dict[str, str], body: bytes
) -> None:
    """Whatever status, headers (Retry-After, Content-Type, Location, encodings...) and body
    the token endpoint answers with, the fetch returns a Token or raises an OAuthError
    subclass, never anything else, within the time bound."""
    fuzz_server.queue_response(status, body, headers=answer_headers)
    auth = ClientCredentialsAuth(fuzz_server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 timeout=TIMEOUT, retries=POLICY)
    outcome = fetch_within_bound(auth)
    assert isinstance(outcome, (Token, OAuthError))


# -- metadata documents --------------------------------------------------------------------


def metadata_like(issuer: str, token_url: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "issuer": st.just(issuer) | json_values,
            "token_endpoint": st.just(token_url) | json_values | header_values,
            "token_endpoint_auth_methods_supported":
                st.just(["client_secret_basic"]) | json_values,
            "mtls_endpoint_aliases": json_values,
        },
    )


@FUZZ
@given(data=st.data(), status=statuses, answer_headers=headers,
       declared=st.booleans())
def test_any_metadata_answer_gives_a_token_or_an_oauth_error(
    fuzz_server: OAuthTestServer, data: st.DataObject, status: int,
    answer_headers: dict[str, str], declared: bool,
) -> None:
    """Whatever the metadata requests are answered with (status, headers, raw bytes, JSON
    of any shape, deep nesting, metadata naming real or bogus token endpoints), discovery
    and the token request end in a Token or an OAuthError subclass within the bound."""
    answer: dict[str, bytes] = {}

    def serve(request: RawRequest) -> Script:
        yield 0, answer["raw"]

    with RawServer(serve) as metadata_server:
        issuer = metadata_server.base_url
        body = data.draw(st.one_of(
            bodies,
            metadata_like(issuer, fuzz_server.token_url).map(lambda d: json.dumps(d).encode()),
        ), label="body")
        answer["raw"] = raw_response(status, body, answer_headers, content_length=declared)
        auth = ClientCredentialsAuth.from_issuer(issuer, CLIENT_ID, CLIENT_SECRET,
                                                 timeout=TIMEOUT, retries=POLICY)
        outcome = fetch_within_bound(auth)
    assert isinstance(outcome, (Token, OAuthError))
