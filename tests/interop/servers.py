"""What the shared interop matrix needs to know about one running authorization server.

Each real server (oidc-provider, django-oauth-toolkit, Authlib) is started by a session
fixture in ``conftest.py`` and described by an :class:`InteropServer`; ``test_matrix.py``
runs the same tests against every one of them.
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth

from ..redis_topologies import stop

AWKWARD_ID = "interop client:+%/=~é"
AWKWARD_SECRET = "s3 cr+t:%/=?ü &#\"'<>"
"""An id and a secret holding every character the Basic form-encoding changes: a space,
``+``, ``%``, ``:``, ``/``, ``=`` and non-ASCII."""


@dataclass(frozen=True)
class Client:
    """A client registered at the server: ``auth_method`` is what it was registered with;
    ``options`` are extra ``ClientCredentialsAuth`` keywords it needs (``private_key``...)."""

    client_id: str
    auth_method: str
    client_secret: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InteropServer:
    """One running server and the API it protects.

    ``clients`` by role: ``basic`` (plain id and secret), ``awkward_basic``
    (:data:`AWKWARD_ID`/:data:`AWKWARD_SECRET`, client_secret_basic), ``post``
    (client_secret_post), and, where the server supports them, ``client_secret_jwt`` and
    ``private_key_jwt``. Every client may ask for the scopes ``read`` and ``write``; tokens
    live :attr:`token_ttl` seconds. ``api_url`` answers 200 with JSON holding at least
    ``client_id`` and ``scope`` for a valid token, and ``refresh_on`` (a status tuple to
    pass as ``refresh_on=``) for an invalid one. ``issuer`` is set when the server
    publishes metadata. ``token_requests()`` counts token requests served;
    ``revoke(access_token)`` revokes a token at the server.
    """

    name: str
    token_url: str
    api_url: str
    clients: Mapping[str, Client]
    token_requests: Callable[[], int]
    revoke: Callable[[str], None]
    issuer: str | None = None
    refresh_on: Sequence[int] = (401,)
    token_ttl: float = 2.0


def start_process(argv: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None,
                  name: str, timeout: float = 60) -> tuple[subprocess.Popen[str], str]:
    """Start a server that prints one line when ready; ``(process, that line)``.

    The server must bind 127.0.0.1 on a free port itself and print its address (a JSON
    line) on stdout once it accepts connections.
    """
    process = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        stderr = process.stderr.read() if process.stderr else ""
        stop_process(process)
        pytest.fail(f"{name} did not start: {stderr[-2000:]}")
    return process, line


def stop_process(process: subprocess.Popen[str]) -> None:
    """Stop a server started by :func:`start_process`, by pid: TERM, then KILL."""
    stop(process, grace=10)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def auth_for(server: InteropServer, role: str, **options: Any) -> ClientCredentialsAuth:
    """An auth for the client of ``role`` at ``server``, as registered (its method, its
    options, the statuses its API answers a dead token with); ``options`` win."""
    client = server.clients[role]
    merged = {"auth_method": client.auth_method, "refresh_on": server.refresh_on,
              "client_secret": client.client_secret, **client.options, **options}
    return ClientCredentialsAuth(server.token_url, client.client_id, **merged)


def call(server: InteropServer, auth: ClientCredentialsAuth) -> dict[str, Any]:
    """The API's JSON answer to a call with ``auth``, which must be a 200."""
    response = requests.get(server.api_url, auth=auth, timeout=15)
    assert response.status_code == 200, (response.status_code, response.text[:200])
    body: dict[str, Any] = response.json()
    return body
