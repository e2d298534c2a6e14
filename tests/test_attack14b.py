"""Attacks on refresh ahead of expiry (issue #14, part 1): a shared cache, a refresh whose
thread cannot be started."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.file_cache import FileTokenCache

from .conftest import settle
from .quirky import QuirkyServer


def test_a_shared_cache_does_not_turn_an_early_refresh_into_a_wait(tmp_path: Path) -> None:
    """After a slow fetch, the holder refreshes ahead earlier than the cache's own refresh
    time: the refresh must fetch a new token, not take the held one back from the cache
    (which would look like a gateway's one token per client and postpone the refresh to
    expiry, where every call waits for the slow endpoint)."""
    with QuirkyServer(lifetime=3, token_delay=0.8) as server, requests.Session() as session:
        session.auth = auth = ClientCredentialsAuth(
            server.token_url, server.client_id, server.client_secret,
            cache=FileTokenCache(tmp_path / "tokens"))
        started = time.monotonic()
        assert session.get(server.api_url, timeout=10).status_code == 200
        first = auth.token
        slowest = 0.0
        while time.monotonic() - started < 4.0:
            before = time.monotonic()
            assert session.get(server.api_url, timeout=10).status_code == 200
            slowest = max(slowest, time.monotonic() - before)
            time.sleep(0.02)
        settle(auth)
        auth.close()
        assert auth.token is not None and auth.token.access_token != first.access_token  # type: ignore[union-attr]
        assert slowest < 0.5, f"a call waited {slowest:.2f}s for the 0.8 s token endpoint"
