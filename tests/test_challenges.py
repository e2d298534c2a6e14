"""Reading an API's 401 before paying for a new token (RFC 6750 §3), and bounding the
token requests of an API that rejects every token (issue #14, part 2)."""

from __future__ import annotations

import logging
import time

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.challenge import read_challenges
from requests_oauthcc.rejections import MAX_PAUSE, MIN_PAUSE
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock
from .rawserver import RawServer, raw_response


def always(status: int, challenge: str | None = None) -> RawServer:
    """An API answering every request with ``status`` (and the challenge, if any)."""
    headers = {} if challenge is None else {"WWW-Authenticate": challenge}
    return RawServer(lambda request: [(0, raw_response(status, b"no", headers))],
                     keep_alive=True)


@pytest.mark.parametrize(
    ("challenge", "retried"),
    [
        (None, True),
        ("Bearer", True),
        ('Bearer realm="api", error="invalid_token"', True),
        ('Basic realm="x", Bearer error="invalid_token", error_description="expired"', True),
        ('Bearer error="insufficient_scope", scope="admin"', False),
        ('Bearer error="invalid_request"', False),
        ('DPoP algs="ES256", Bearer error="insufficient_scope", scope="a b"', False),
        ('Bearer error="insufficient_scope", Bearer error="invalid_token"', True),
    ],
)
def test_what_the_401_says_decides_whether_a_token_is_requested(
    server: OAuthTestServer, challenge: str | None, retried: bool
) -> None:
    """invalid_token or no error code: one new token and one retry; insufficient_scope or
    invalid_request (in any of several challenges): no token request, the 401 returned."""
    with always(401, challenge) as api, requests.Session() as session:
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET)
        response = session.get(api.url("/x"), timeout=10)
    assert response.status_code == 401
    assert len(response.history) == (1 if retried else 0)
    assert server.token_requests == (2 if retried else 1)


def test_insufficient_scope_is_logged_with_the_scope_asked_for(
    server: OAuthTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The DEBUG line of an insufficient_scope 401 names the scope the API asked for."""
    challenge = 'Bearer error="insufficient_scope", scope="orders:write admin"'
    with always(401, challenge) as api, caplog.at_level(logging.DEBUG, "requests_oauthcc"):
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET)
        requests.get(api.url("/x"), auth=auth, timeout=10)
    lines = [r.getMessage() for r in caplog.records if "insufficient_scope" in r.getMessage()]
    assert len(lines) == 1 and "orders:write admin" in lines[0]
    assert lines[0].startswith("401 from http://127.0.0.1:")


def test_an_api_rejecting_every_token_costs_a_handful_of_token_requests(
    server: OAuthTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """100 calls to an API that answers 401 to everything: two token requests (the first
    token and one retry), every call gets its 401 promptly, and one WARNING names the
    likely causes."""
    with always(401, 'Bearer error="invalid_token"') as api, requests.Session() as session, \
            caplog.at_level(logging.WARNING, "requests_oauthcc"):
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                             scope="read")
        slowest = 0.0
        statuses = []
        for _ in range(100):
            started = time.monotonic()
            statuses.append(session.get(api.url("/x"), timeout=10).status_code)
            slowest = max(slowest, time.monotonic() - started)
    assert statuses == [401] * 100
    assert server.token_requests == 2
    assert slowest < 2.0, slowest  # a loopback round trip or two, never a pause
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    for cause in ("audience", "scope", "clock", "granted: read"):
        assert cause in warnings[0]


def test_the_pause_doubles_while_rejections_go_on_and_ends_on_success(
    server: OAuthTestServer, clock: FakeClock
) -> None:
    """With the auth's clock: 5 s without token requests forced by rejections, then one,
    rejected again: 10 s; ... capped at 60 s. A retry that is accepted ends the pause, and
    the next rejection costs a token at once."""
    answers = {"status": 401}

    def answer(request: object) -> list[tuple[float, bytes]]:
        return [(0, raw_response(answers["status"], b"", {"WWW-Authenticate": "Bearer"}))]

    with RawServer(answer, keep_alive=True) as api, requests.Session() as session:
        session.auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                             clock=clock)

        def tokens_after_call() -> int:
            session.get(api.url("/x"), timeout=10)
            return server.token_requests

        assert tokens_after_call() == 2  # first token, one retry rejected again: paused
        pauses = []
        pause = MIN_PAUSE
        for _ in range(6):
            clock.advance(pause - 0.1)
            before = server.token_requests
            assert tokens_after_call() == before  # still paused
            clock.advance(0.2)
            assert tokens_after_call() == before + 1  # one forced request, rejected again
            pauses.append(pause)
            pause = min(pause * 2, MAX_PAUSE)
        assert pauses == [5, 10, 20, 40, 60, 60]
        answers["status"] = 200  # the API is fixed; its next 401s are single ones
        clock.advance(MAX_PAUSE + 0.1)
        before = server.token_requests
        assert session.get(api.url("/x"), timeout=10).status_code == 200
        answers["status"] = 401
        response = session.get(api.url("/x"), timeout=10)
        assert response.status_code == 401 and server.token_requests == before + 1
        assert len(response.history) == 1, "after the pause ended, a rejection is retried"


_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz_-.", min_size=1, max_size=12)
_QUOTED = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=100, deadline=None)
@given(
    schemes=st.lists(st.sampled_from(["Bearer", "DPoP", "Basic", "Digest"]), min_size=1,
                     max_size=3),
    error=st.sampled_from(["invalid_token", "insufficient_scope", "invalid_request"]),
    scope=_QUOTED, noise=st.lists(st.tuples(_TOKEN, _QUOTED), max_size=3),
    quoted_error=st.booleans(),
)
def test_read_challenges_finds_the_error_and_scope_among_several(
    schemes: list[str], error: str, scope: str, noise: list[tuple[str, str]],
    quoted_error: bool,
) -> None:
    """Whatever other challenges and parameters share the header (quoted strings holding
    commas, quotes, "error=" text), the error code and the scope are read exactly."""
    noise = [(name, value) for name, value in noise if name not in ("error", "scope")]
    others = [f"{s} " + ", ".join(f"{n}={_quote(v)}" for n, v in noise) if noise else s
              for s in schemes]
    ours = (f"Bearer error={_quote(error) if quoted_error else error}, "
            f"scope={_quote(scope)}")
    header = ", ".join([*others[:1], ours, *others[1:]])
    read = read_challenges(header)
    assert read.errors == {error}
    assert read.scope == scope


def test_threads_rejected_together_pause_for_one_round_only(
    server: OAuthTestServer, clock: FakeClock
) -> None:
    """8 threads whose retries with the same brand-new token are all rejected make one
    round: the pause is MIN_PAUSE, not doubled per thread (5 s, not 60 s)."""
    from .conftest import in_threads

    with always(401, 'Bearer error="invalid_token"') as api:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, clock=clock)
        statuses = in_threads(8, lambda: requests.get(api.url("/x"), auth=auth,
                                                      timeout=10).status_code)
        assert statuses == [401] * 8 and server.token_requests == 2
        clock.advance(MIN_PAUSE + 0.1)
        response = requests.get(api.url("/x"), auth=auth, timeout=10)
        assert response.status_code == 401 and server.token_requests == 3
        assert len(response.history) == 1, "the pause was one round long"
