"""A second outside review of issue #13 (credentials from the platform, rotation without
restart): each test reproduces one finding against real loopback servers, real files and
real processes (no mock of requests)."""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

from requests_oauthcc._watch import WatchedFile
from requests_oauthcc.cache import MemoryTokenCache
from requests_oauthcc.platforms import GitHubActionsOIDC

from .certs import client_files, issue_client, make_pki, mtls_auth, mtls_server
from .conftest import replace_file
from .rawserver import RawServer, raw_response
from .test_attack13 import github_environ, make_jwt


def test_a_rotation_seen_first_by_the_api_adapter_still_renews_token_connections(
        tmp_path: Path) -> None:
    """The certificate files rotate; the API Session's adapter notices it first (a token
    from the shared cache, fetched by another process over the new certificate). When this
    auth later requests a token itself, it must not do so over its token Session's pooled
    connection opened with the old certificate: the token would be bound to the old one
    while the API sees the new one, and every call would end in 401."""
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    cert, key = client_files(pki, tmp_path)
    cache = MemoryTokenCache()
    with mtls_server(pki) as server:
        fetcher, reader = (mtls_auth(server, pki, cert, key, cache=cache) for _ in range(2))
        reader.fetch_token()  # the reader's token Session keeps a connection, old certificate
        api = reader.make_session()
        assert api.get(server.resource_url, verify=pki.ca).status_code == 200
        new_cert, new_key = issue_client(pki)
        replace_file(key, new_key)
        replace_file(cert, new_cert)
        fetcher.fetch_token()  # bound to the new certificate, shared through the cache
        before = server.token_requests
        reader.fetch_token()  # the fetcher's token, from the cache
        assert server.token_requests == before
        first = api.get(server.resource_url, verify=pki.ca)  # the adapter sees the change
        assert (first.status_code, len(first.history)) == (200, 0)
        reader.fetch_token()  # this auth's own token request, after the rotation
        assert server.token_requests == before + 1
        statuses = [api.get(server.resource_url, verify=pki.ca) for _ in range(3)]
        assert [(r.status_code, len(r.history)) for r in statuses] == [(200, 0)] * 3


def wait_for_child(pid: int, seconds: float) -> int | None:
    """The exit code of child ``pid``, or ``None`` (the child killed) if it runs longer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_during_a_github_token_request_gets_its_own_token() -> None:
    """A process forks (gunicorn, multiprocessing) while one of its threads waits for the
    GitHub Actions token service, holding GitHubActionsOIDC's lock: the child must not
    inherit the held lock and hang for ever at its first call (the README promises fresh
    locks in a forked child)."""
    value = make_jwt({"exp": int(time.time()) + 600, "iat": int(time.time())})
    answer = raw_response(200, json.dumps({"value": value}).encode(),
                          headers={"Content-Type": "application/json"})
    with RawServer(lambda request: [(1.0, answer)]) as github:
        oidc = GitHubActionsOIDC("api://x", environ=github_environ(github))
        parent = threading.Thread(target=oidc)
        parent.start()
        while not github.requests:  # the parent's request is in flight, the lock held
            time.sleep(0.01)
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if oidc() == value else 1)
            except BaseException:
                os._exit(2)
        parent.join()
        assert wait_for_child(pid, 8) == 0, "the forked child hung on the inherited lock"


def test_a_watched_file_pickles_as_its_path(tmp_path: Path) -> None:
    """WatchedFile's docstring promises it pickles as its path (a copy reads the file
    afresh); its lock made pickling fail with TypeError."""
    path = tmp_path / "secret"
    path.write_text("first")
    watched = WatchedFile(path, "client secret file", bytes)
    assert watched.get() == b"first"
    copy = pickle.loads(pickle.dumps(watched))
    replace_file(path, b"second")
    assert (copy.path, copy.get()) == (str(path), b"second")
