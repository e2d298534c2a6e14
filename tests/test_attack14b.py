"""Attacks on refresh ahead of expiry (issue #14, part 1): a shared cache, a refresh whose
thread cannot be started."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, Token
from requests_oauthcc._flights import Refresher
from requests_oauthcc.file_cache import FileTokenCache
from requests_oauthcc.reuse import TokenHolder

from .conftest import FakeClock, settle
from .quirky import QuirkyServer
from .test_reuse import Fetcher


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


def test_an_interrupted_start_of_the_refresh_thread_leaves_no_flight(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt (or a signal handler's exception) raised in the request that
    starts the refresh thread, before the thread runs, belongs to that request: the
    flight made for the thread does not stay behind unfinished, so later requests (once
    the held token has expired) and close() do not wait for it for ever."""
    fetch = Fetcher(clock)
    holder = TokenHolder(fetch, leeway=10.0, clock=clock)
    first = holder.get()
    clock.advance(95)  # due (90 s), valid until 100 s

    def interrupted(self: threading.Thread) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Refresher, "start", interrupted)
        with pytest.raises(KeyboardInterrupt):
            holder.get()
    clock.advance(10)  # expired: a request needs a new token
    outcome: list[Token] = []
    caller = threading.Thread(target=lambda: outcome.append(holder.get()), daemon=True)
    caller.start()
    caller.join(5)
    assert outcome and outcome[0] is not first, "a request waited for a refresh never started"
    closer = threading.Thread(target=holder.close, daemon=True)
    closer.start()
    closer.join(5)
    assert not closer.is_alive(), "close() waits for a refresh never started"
