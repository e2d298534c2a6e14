"""Secret hygiene: no secret, Basic header or token in reprs, errors, tracebacks or logs.

Every error path and the happy path run with DEBUG logging captured; then every string a
user could see is searched for the secrets.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable, Iterator

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, TokenRetry
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET

FAST = TokenRetry(total=1, backoff_factor=0.01)
BASIC = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))
        if record.exc_info:
            self.texts.append("".join(traceback.format_exception(*record.exc_info)))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def visible(exc: BaseException) -> list[str]:
    """Everything of an exception a user or a log might show."""
    texts = [str(exc), repr(exc), repr(exc.args)]
    texts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    response = getattr(exc, "response", None)
    if response is not None and response.request is not None:
        texts.append(repr(response.request.headers))
        texts.append(str(response.request.body))
    return texts


Scenario = Callable[[OAuthTestServer, ClientCredentialsAuth], None]


def happy_path_with_401_retry(server: OAuthTestServer, auth: ClientCredentialsAuth) -> None:
    with requests.Session() as s:
        s.auth = auth
        s.get(server.resource_url)
        server.revoke_all()
        s.post(server.resource_url, data=b"x")
        s.get(server.url("/unauthorized"))


def queued(status: int, body: object, **kw: object) -> Scenario:
    def run(server: OAuthTestServer, auth: ClientCredentialsAuth) -> None:
        server.queue_response(status, body, count=5, **kw)  # type: ignore[arg-type]
        auth.fetch_token()
    return run


def echoing_secret_html(server: OAuthTestServer, auth: ClientCredentialsAuth) -> None:
    sent = BASIC if "client_secret_basic" in repr(auth) else CLIENT_SECRET
    server.queue_response(500, f"<html>bad {CLIENT_SECRET} {sent}</html>", count=5)
    auth.fetch_token()


def refused(server: OAuthTestServer, auth: ClientCredentialsAuth) -> None:
    server.stop()
    auth.fetch_token()


def plain_http_remote(server: OAuthTestServer, auth: ClientCredentialsAuth) -> None:
    requests.get("http://example.invalid/", auth=auth, timeout=1)


SCENARIOS: dict[str, Scenario] = {
    "happy path and 401 retry": happy_path_with_401_retry,
    "invalid_client echoing secret": queued(
        401, {"error": "invalid_client", "error_description": f"got {CLIENT_SECRET}"}),
    "invalid_scope": queued(400, {"error": "invalid_scope"}),
    "error uri and odd code": queued(400, {"error": "x_custom", "error_uri": "https://e"}),
    "500 html echoing secret": echoing_secret_html,
    "200 not json": queued(200, f"oops {CLIENT_SECRET}"),
    "200 bad token_type": queued(200, {"access_token": "tok-SECRET-1", "token_type": "mac"}),
    "200 bad expires_in": queued(200, {"access_token": "tok-SECRET-2", "expires_in": "abc"}),
    "200 token with space": queued(200, {"access_token": "tok SECRET 3"}),
    "redirect": queued(307, b"", headers={"Location": "https://elsewhere/token"}),
    "body over cap": queued(200, b"x" * (2 << 20)),
    "timeout": queued(200, {"access_token": "tok-SECRET-4"}, delay=0.6),
    "connection refused": refused,
    "plain http to remote API": plain_http_remote,
}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_or_token_leaks(
    server: OAuthTestServer, captured: Capture, name: str, method: str
) -> None:
    """Each path leaves no secret, Basic credential or access token in anything visible."""
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 auth_method=method, retries=FAST, timeout=0.3)
    texts: list[str] = []
    try:
        SCENARIOS[name](server, auth)
    except requests.RequestException as exc:
        texts.extend(visible(exc))
    else:
        assert name == "happy path and 401 retry", "every other scenario must raise"
    texts += [*captured.texts, repr(auth), repr(auth.token)]
    haystack = "\n".join(texts)
    if name != "plain http to remote API":  # refused before any I/O
        assert captured.texts, "DEBUG logging produced records"
    forbidden = [CLIENT_SECRET, BASIC, "tok-SECRET", "tok SECRET"]
    forbidden += server.access_tokens_issued
    for secret in forbidden:
        assert secret not in haystack, f"{secret[:6]}... leaked in {name}"


@pytest.mark.parametrize("registered", [True, False])
def test_assertions_never_leak(captured: Capture, registered: bool) -> None:
    """private_key_jwt: neither the key nor any assertion sent shows in errors or logs."""
    from .keys import rsa_pair

    pair = rsa_pair()
    keys = {CLIENT_ID: pair.public_pem} if registered else {}
    with OAuthTestServer({}, client_keys=keys) as server:
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=pair.private_pem,
                                     retries=0)
        texts: list[str] = []
        try:
            happy_path_with_401_retry(server, auth)
        except requests.RequestException as exc:
            texts.extend(visible(exc))
        assert registered or texts, "an unregistered key must fail"
        assertions = [r.form["client_assertion"][0] for r in server.token_log]
        tokens = server.access_tokens_issued
    haystack = "\n".join([*texts, *captured.texts, repr(auth), repr(auth.token)])
    assert assertions
    for secret in [*assertions, *tokens, pair.private_pem[30:90]]:
        assert secret not in haystack
