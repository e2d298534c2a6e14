"""Refresh ahead of expiry, off the request path (issue #14, part 1): real threads, a real
slow token endpoint, forked processes."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth

from .conftest import FORK_WARNING, FakeClock, settle
from .quirky import QuirkyServer


def refreshers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "requests-oauthcc refresh"]


def test_no_api_call_waits_for_a_slow_token_endpoint_at_refresh(clock: FakeClock) -> None:
    """8 threads calling the API while the token endpoint takes 1 s to answer the refresh:
    none of them waits for it (each call is a loopback round trip), one token request is
    made, and the new token is used once it arrives."""
    with QuirkyServer(lifetime=60, token_delay=0.0) as server, requests.Session() as session:
        session.auth = auth = ClientCredentialsAuth(
            server.token_url, server.client_id, server.client_secret, clock=clock)
        assert session.get(server.api_url, timeout=10).status_code == 200
        first = auth.token
        server.token_delay = 1.0
        clock.advance(55)  # refresh time (54 s) passed; valid until 60 s
        slowest = [0.0]
        statuses: list[int] = []
        lock = threading.Lock()

        def calls() -> None:
            for _ in range(10):
                started = time.monotonic()
                status = session.get(server.api_url, timeout=10).status_code
                with lock:
                    statuses.append(status)
                    slowest[0] = max(slowest[0], time.monotonic() - started)

        threads = [threading.Thread(target=calls) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(refreshers()) == 1, "the refresh was still running meanwhile"
        settle(auth)
        assert statuses == [200] * 80
        assert slowest[0] < 0.6, f"a call waited {slowest[0]:.2f}s: the 1 s refresh?"
        assert server.token_requests == 2 and auth.token is not first
        assert refreshers() == []
        auth.close()


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_child_forked_during_a_refresh_runs_its_own(clock: FakeClock) -> None:
    """A process forked while the parent's refresh is in flight has no refresh running:
    its first call still goes out with the held token at once, and it refreshes on its
    own (its own token request); the parent's refresh completes as usual."""
    with QuirkyServer(lifetime=60, token_delay=0.0) as server:
        auth = ClientCredentialsAuth(server.token_url, server.client_id,
                                     server.client_secret, clock=clock)
        first = auth.fetch_token()
        server.token_delay = 1.0
        clock.advance(55)
        assert requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
        assert len(refreshers()) == 1
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if all went as said
            code = 1
            try:
                started = time.monotonic()
                ok = requests.get(server.api_url, auth=auth, timeout=10).status_code == 200
                quick = time.monotonic() - started < 0.6
                settle(auth)
                token = auth.token
                code = 0 if ok and quick and token is not None and token is not first else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        settle(auth)
        assert os.waitstatus_to_exitcode(status) == 0
        assert auth.token is not first
        assert server.token_requests == 3  # the first, the parent's refresh, the child's
