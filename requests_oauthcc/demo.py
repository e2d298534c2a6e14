"""``python -m requests_oauthcc demo``: the main job, shown against the embedded server."""

from __future__ import annotations

import logging
import os
import sys
import time

import requests

from .auth import ClientCredentialsAuth
from .testing import OAuthTestServer

TOKEN_LIFETIME = 2.0


def run() -> int:
    """Show lazy fetch, reuse, refresh before expiry and a 401 recovered; 0 if all held."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  [%(levelname)s %(name)s] %(message)s"))
    package_logger = logging.getLogger("requests_oauthcc")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG)
    failures = 0

    def step(title: str) -> None:
        print(f"\n== {title}")

    def check(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}")

    # Everything stays on this host: exempt it from a proxy set in the environment (as
    # behind a corporate proxy), through which plain http would rightly be refused.
    for name in ("no_proxy", "NO_PROXY"):
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), "127.0.0.1")))
    with OAuthTestServer(
        {"demo-client": "demo-secret"}, token_lifetime=TOKEN_LIFETIME
    ) as server, requests.Session() as session:
        print(f"local authorization server and API at {server.base_url}")
        step("mount the auth on a Session (no network yet)")
        session.auth = auth = ClientCredentialsAuth(
            server.token_url, "demo-client", "demo-secret", scope="read write"
        )
        print(f"     {auth!r}")
        check(server.token_requests == 0, "no token requested by the constructor")

        step("first call: the token is fetched lazily")
        response = session.get(server.resource_url)
        check(response.status_code == 200, f"GET /resource -> {response.status_code}")
        check(server.token_requests == 1, f"token requests so far: {server.token_requests}")

        step("three more calls: the token is reused")
        for _ in range(3):
            session.get(server.resource_url).raise_for_status()
        check(server.token_requests == 1, f"token requests so far: {server.token_requests}")

        wait = TOKEN_LIFETIME * 0.9 + 0.1
        step(f"wait {wait:.1f}s: the {TOKEN_LIFETIME:.0f}s token is refreshed before it "
             "expires, in the background")
        time.sleep(wait)
        held = auth.token
        response = session.get(server.resource_url)
        check(response.status_code == 200,
              f"GET /resource -> {response.status_code}, at once, with the still-valid token")
        deadline = time.monotonic() + 5
        while auth.token is held and time.monotonic() < deadline:
            time.sleep(0.01)
        check(auth.token is not held, "the new token arrived meanwhile")
        check(server.token_requests == 2, f"token requests so far: {server.token_requests}")

        step("the server revokes every token: a 401, then one retry with a new token")
        server.revoke_all()
        response = session.get(server.resource_url)
        statuses = [r.status_code for r in response.history] + [response.status_code]
        check(statuses == [401, 200], f"statuses seen: {statuses}")
        check(server.token_requests == 3, f"token requests so far: {server.token_requests}")

    package_logger.removeHandler(handler)
    verdict = f"{failures} checks FAILED" if failures else "all checks passed"
    print(f"\ndemo finished: {verdict}")
    return 1 if failures else 0
