"""Rotation without a restart, under load: 16 threads call an API for several token
lifetimes while the test replaces one credential (the assertion file, the private key file,
the certificate files, the secret file: each in its own run). No API call fails, and every
token request after the change uses the new credential, as the server records it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from requests_oauthcc import ClientCredentialsAuth, SecretFile
from requests_oauthcc.testing import (
    FakeIssuer,
    FederatedIdentity,
    OAuthTestServer,
    credential_fingerprint,
)

from .certs import client_files, issue_client, make_pki, mtls_auth, mtls_server
from .conftest import CLIENT_ID, CLIENT_SECRET, replace_file
from .keys import ec_pair

THREADS = 16
LIFETIME = 1.5
"""Seconds each token lives: the run lasts about four of them. Not less: a token is used for
a second at least, and a loaded machine must not see it expire at the server meanwhile."""
ROTATE_AFTER = 0.5
"""Seconds before the rotation waits for a token request: the first refresh (at 90% of the
first token's life), or the first fetch if a loaded machine has not made it yet."""
RUN_AFTER = 3 * LIFETIME
"""Seconds the calls go on after the rotation: three lifetimes, so at least two token
requests with the new credential."""


def under_load(server: OAuthTestServer, call: Callable[[], requests.Response],
               rotate: Callable[[], str], old: str) -> None:
    """Run ``call`` in 16 threads; just after the first token request :data:`ROTATE_AFTER`
    seconds in, ``rotate`` replaces the credential and says the fingerprint of the new one;
    the calls go on for :data:`RUN_AFTER` seconds more. Then: no call failed, and the token
    requests after the change used the new credential (the one that may have been in flight
    is let be)."""
    stop = threading.Event()
    failures: list[object] = []
    calls = [0]

    def worker() -> None:
        while not stop.is_set():
            try:
                response = call()
            except Exception as exc:  # any failure of an API call is one
                failures.append(repr(exc)[:200])
                continue
            calls[0] += 1
            if response.status_code != 200:
                failures.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(ROTATE_AFTER)
        seen = len(server.token_log)
        deadline = time.monotonic() + 5 * LIFETIME
        while len(server.token_log) == seen and time.monotonic() < deadline:
            time.sleep(0.01)  # rotate right after a refresh, not during one
        new = rotate()
        changed_at = len(server.token_log)
        time.sleep(RUN_AFTER)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert failures == [], failures[:5]
    assert calls[0] > 100
    log = [record.credential for record in server.token_log]
    assert set(log[:changed_at]) == {old}
    after = log[changed_at:]
    if after and after[0] == old:  # in flight during the change: let be
        after = after[1:]
    assert len(after) >= 2 and set(after) == {new}, (len(after), set(after))


def test_a_rotated_assertion_file_under_load(tmp_path: Path) -> None:
    """A kubelet-style projected token file, rotated by the platform."""
    with FakeIssuer() as issuer, OAuthTestServer(
            {}, token_lifetime=LIFETIME,
            federated_clients={CLIENT_ID: FederatedIdentity(issuer.url, "system:sa:app")},
    ) as server:
        projected = issuer.project(tmp_path, "system:sa:app", server.token_url)
        old = credential_fingerprint(assertion=projected.read())
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID,
                                     client_assertion=projected.path)
        with requests.Session() as api:
            under_load(server, lambda: api.get(server.resource_url, auth=auth, timeout=30),
                       lambda: credential_fingerprint(assertion=projected.rotate()), old)


def test_a_rotated_private_key_file_under_load(tmp_path: Path) -> None:
    """private_key= a path; the server accepts the old and the new key (an overlap, as in
    a real key rotation)."""
    old_key, new_key = ec_pair(), ec_pair()
    path = tmp_path / "key.pem"
    path.write_text(old_key.private_pem)
    with OAuthTestServer({}, token_lifetime=LIFETIME, client_keys={
            CLIENT_ID: [old_key.public_pem, new_key.public_pem]}) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=path)

        def rotate() -> str:
            replace_file(path, new_key.private_pem.encode())
            return credential_fingerprint(public_key=new_key.public_pem)

        with requests.Session() as api:
            under_load(server, lambda: api.get(server.resource_url, auth=auth, timeout=30),
                       rotate, credential_fingerprint(public_key=old_key.public_pem))


def test_a_rotated_secret_file_under_load(tmp_path: Path) -> None:
    """SecretFile; the server accepts the old and the new secret."""
    path = tmp_path / "secret"
    path.write_text(CLIENT_SECRET + "\n")
    new_secret = "rotated-" + CLIENT_SECRET
    with OAuthTestServer({CLIENT_ID: [CLIENT_SECRET, new_secret]},
                         token_lifetime=LIFETIME) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, SecretFile(path))

        def rotate() -> str:
            replace_file(path, new_secret.encode() + b"\n")
            return credential_fingerprint(secret=new_secret)

        with requests.Session() as api:
            under_load(server, lambda: api.get(server.resource_url, auth=auth, timeout=30),
                       rotate, credential_fingerprint(secret=CLIENT_SECRET))


def test_rotated_certificate_files_under_load(tmp_path: Path) -> None:
    """cert=(cert, key) paths, renewed by the CA, the key replaced first (a pair caught in
    between does not load, and is looked at again): tokens are bound to the certificate
    (RFC 8705 §3), so make_session()'s API calls must switch connections with it."""
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    cert, key = client_files(pki, tmp_path)
    new_cert, new_key = issue_client(pki)

    def rotate() -> str:
        replace_file(key, new_key)
        replace_file(cert, new_cert)
        return credential_fingerprint(certificate=new_cert)

    with mtls_server(pki, token_lifetime=LIFETIME) as server:
        api = mtls_auth(server, pki, cert, key).make_session()
        under_load(server, lambda: api.get(server.resource_url, verify=pki.ca, timeout=30),
                   rotate, credential_fingerprint(certificate=pki.client_cert))
