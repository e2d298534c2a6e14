"""Shared fixtures: a fresh local authorization server per test, and an auth factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.testing import OAuthTestServer

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-Zq8mX4"  # distinctive, so leak checks can search for it


class FakeClock:
    """A monotonic clock that tests move by hand instead of sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def server() -> Iterator[OAuthTestServer]:
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}) as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_auth(server: OAuthTestServer) -> Callable[..., ClientCredentialsAuth]:
    """Build a ClientCredentialsAuth for the test server; keywords override the defaults."""

    def make(**options: Any) -> ClientCredentialsAuth:
        options.setdefault("retries", 0)
        return ClientCredentialsAuth(
            options.pop("token_url", server.token_url),
            options.pop("client_id", CLIENT_ID),
            options.pop("client_secret", CLIENT_SECRET),
            **options,
        )

    return make


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
