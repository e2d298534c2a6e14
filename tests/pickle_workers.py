"""Code run in spawn/forkserver worker processes by the pickling tests (importable)."""

from __future__ import annotations

import os

import requests

from requests_oauthcc import ClientCredentialsAuth


def call_api(session: requests.Session, url: str) -> tuple[int, str | None, bool, int]:
    """Call ``url`` with the Session received from the parent: (status, the worker's
    access token, whether the auth arrived without a token, the worker's pid)."""
    auth = session.auth
    assert isinstance(auth, ClientCredentialsAuth)
    arrived_empty = auth.token is None
    status = session.get(url, timeout=10).status_code
    token = auth.token
    return status, None if token is None else token.access_token, arrived_empty, os.getpid()
