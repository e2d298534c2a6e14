"""The loopback exemption holds only for traffic that stays on this host (issue #10, item 6).

Plain http is allowed to ``localhost``, 127.0.0.0/8 and ``::1`` only when requests would
connect directly: a proxy (environment or Session) reads the secret and the token.
Tested against a real forward proxy and the local server; the rule itself
(:func:`sends_in_clear`) also against requests' proxy selection directly.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from requests_oauthcc import ClientCredentialsAuth, InsecureTransportError
from requests_oauthcc._urls import is_loopback_host, proxy_for, sends_in_clear
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET
from .proxy import ForwardProxy

MakeAuth = Callable[..., ClientCredentialsAuth]

_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                    "ALL_PROXY", "no_proxy", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no proxy variable set (whatever the machine has)."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


def _basic() -> bytes:
    return base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode())


LOOPBACK_NAMES = ["127.0.0.1", "localhost"]


@pytest.mark.parametrize("host", LOOPBACK_NAMES)
def test_environment_proxy_makes_a_loopback_token_url_insecure(
    host: str, server: OAuthTestServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With http_proxy set, an http token URL on a loopback host is refused at construction,
    before the proxy sees anything (on 0.2.0 the proxy got the Basic secret and the token)."""
    monkeypatch.setenv("http_proxy", proxy.url)
    with requests.Session() as api, pytest.raises(InsecureTransportError, match="proxy") as caught:
        api.auth = ClientCredentialsAuth(
            f"http://{host}:{server.port}/token", CLIENT_ID, CLIENT_SECRET, retries=0)
        api.get(f"http://{host}:{server.port}/resource", timeout=10)
    assert CLIENT_SECRET not in str(caught.value)
    assert proxy.received == []
    assert server.token_requests == 0


@pytest.mark.parametrize("host", LOOPBACK_NAMES)
def test_environment_proxy_set_later_makes_a_loopback_api_insecure(
    host: str, make_auth: MakeAuth, server: OAuthTestServer, proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API call to a loopback http URL works directly, and is refused once http_proxy
    applies to it: the remembered verdict follows the proxy variables."""
    auth = make_auth()
    api_url = f"http://{host}:{server.port}/resource"
    with requests.Session() as api:
        api.auth = auth
        assert api.get(api_url, timeout=10).status_code == 200
        monkeypatch.setenv("http_proxy", proxy.url)
        with pytest.raises(InsecureTransportError, match="proxy"):
            api.get(api_url, timeout=10)
        monkeypatch.setenv("no_proxy", host)
        assert api.get(api_url, timeout=10).status_code == 200
    assert proxy.received == []
    assert auth.token is not None
    assert auth.token.access_token.encode() not in proxy.seen


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "all_proxy", "ALL_PROXY", "Http_Proxy"])
def test_every_spelling_of_the_proxy_variable_counts(
    variable: str, make_auth: MakeAuth, server: OAuthTestServer, proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any variable requests would take the http proxy from refuses a loopback API, also
    when set after a first, direct call."""
    auth = make_auth()
    with requests.Session() as api:
        api.auth = auth
        assert api.get(server.resource_url, timeout=10).status_code == 200
        monkeypatch.setenv(variable, proxy.url)
        with pytest.raises(InsecureTransportError):
            api.get(server.resource_url, timeout=10)
    assert proxy.received == []


def test_no_proxy_sends_loopback_requests_directly(
    server: OAuthTestServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With NO_PROXY naming the loopback hosts, requests connect directly and work."""
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for host in LOOPBACK_NAMES:
        auth = ClientCredentialsAuth(f"http://{host}:{server.port}/token", CLIENT_ID,
                                     CLIENT_SECRET, retries=0)
        with auth.make_session() as api:
            assert api.get(f"http://{host}:{server.port}/resource", timeout=10).ok
    assert proxy.received == []
    assert server.token_requests == 2


def test_proxy_of_the_token_session_makes_the_token_url_insecure(
    server: OAuthTestServer, proxy: ForwardProxy
) -> None:
    """A token Session whose proxies send http through a proxy is refused at construction
    (on 0.2.0 the proxy got the Basic client secret at the first request)."""
    token_session = requests.Session()
    token_session.proxies = {"http": proxy.url}
    with pytest.raises(InsecureTransportError, match="proxy"):
        auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                     session=token_session, retries=0)
        auth.fetch_token()
    assert _basic() not in proxy.seen and proxy.received == []


def test_token_session_that_ignores_the_environment_connects_directly(
    server: OAuthTestServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_env=False: requests ignores http_proxy for token requests, so the loopback
    token URL is accepted and fetched directly."""
    monkeypatch.setenv("http_proxy", proxy.url)
    token_session = requests.Session()
    token_session.trust_env = False
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 session=token_session, retries=0)
    auth.fetch_token()
    assert server.token_requests == 1 and proxy.received == []


@pytest.mark.parametrize("how", ["session proxies", "request proxies"])
def test_make_session_refuses_its_own_proxies(
    how: str, make_auth: MakeAuth, server: OAuthTestServer, proxy: ForwardProxy
) -> None:
    """The Session from make_session checks the proxies requests really uses at send time,
    which the auth cannot see: the token never reaches a proxy (it did on 0.2.0)."""
    auth = make_auth()
    auth.fetch_token()
    with auth.make_session() as api:
        per_request = None
        if how == "session proxies":
            api.proxies = {"http": proxy.url}
        else:
            per_request = {"http": proxy.url}
        with pytest.raises(InsecureTransportError, match="proxy"):
            api.get(server.resource_url, timeout=10, proxies=per_request)
        assert proxy.received == []
        api.proxies = {}
        assert api.get(server.resource_url, timeout=10).status_code == 200  # direct: fine
    assert proxy.received == []


def test_make_session_lets_other_requests_use_its_proxy(
    make_auth: MakeAuth, server: OAuthTestServer, proxy: ForwardProxy
) -> None:
    """A request that does not carry the token (origin not allowed) may use the proxy."""
    auth = make_auth(allowed_origins=["https://api.example.com"])
    with auth.make_session() as api:
        api.proxies = {"http": proxy.url}
        response = api.get(server.resource_url, timeout=10)
    assert response.status_code == 401  # went through the proxy, without a token
    assert len(proxy.received) == 1 and b"Authorization" not in proxy.received[0]


def test_insecure_allow_http_lets_a_proxy_read_everything(
    server: OAuthTestServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """insecure_allow_http=True is the explicit opt-out: the proxy is used as asked."""
    monkeypatch.setenv("http_proxy", proxy.url)
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, retries=0,
                                 insecure_allow_http=True)
    assert requests.get(server.resource_url, auth=auth, timeout=10).status_code == 200
    assert len(proxy.received) == 2


@pytest.mark.parametrize("name", ["foo.localhost", "localhost.", "127.0.0.1.nip.io", "0.0.0.0"])
def test_only_exact_loopback_names_are_exempt(
    name: str, make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """Names under .localhost (resolved by DNS on many hosts) and look-alikes are refused
    for the token URL and the API without insecure_allow_http (0.2.0 let .localhost pass)."""
    with pytest.raises(InsecureTransportError, match="not localhost"):
        ClientCredentialsAuth(f"http://{name}:{server.port}/token", CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(InsecureTransportError):
        requests.get(f"http://{name}:{server.port}/resource", auth=make_auth(), timeout=5)
    assert server.token_requests == 0


# -- the rule itself, against requests' own proxy selection ------------------------------


def _session(proxies: dict[str, str] | None = None, trust_env: bool = True) -> requests.Session:
    session = requests.Session()
    session.proxies = proxies or {}
    session.trust_env = trust_env
    return session


@pytest.mark.parametrize(
    ("url", "environment", "proxies", "trust_env", "in_clear"),
    [
        ("https://auth.example.com/t", {"https_proxy": "http://p:3128"}, None, True, False),
        ("https://auth.example.com/t", {}, {"https": "http://p:3128"}, True, False),
        ("http://auth.example.com/t", {}, None, True, True),
        ("http://127.0.0.1:8080/t", {}, None, True, False),
        ("http://127.9.8.7/t", {}, None, True, False),
        ("http://[::1]:8080/t", {}, None, True, False),
        ("http://LOCALHOST:8080/t", {}, None, True, False),
        ("http://127.0.0.1:8080/t", {"http_proxy": "http://p:3128"}, None, True, True),
        ("http://127.0.0.1:8080/t", {"all_proxy": "socks5://p:1080"}, None, True, True),
        ("http://127.0.0.1:8080/t", {"https_proxy": "http://p:3128"}, None, True, False),
        ("http://127.0.0.1:8080/t", {"http_proxy": "http://p:3128", "no_proxy": "127.0.0.1"},
         None, True, False),
        ("http://127.0.0.1:8080/t", {"http_proxy": "http://p:3128", "no_proxy": "127.0.0.0/8"},
         None, True, False),
        ("http://localhost:8080/t", {"http_proxy": "http://p:3128", "no_proxy": "localhost:8080"},
         None, True, False),
        ("http://localhost:8080/t", {"http_proxy": "http://p:3128", "no_proxy": "localhost:9"},
         None, True, True),
        ("http://127.0.0.1:8080/t", {"http_proxy": "http://p:3128"}, None, False, False),
        ("http://127.0.0.1:8080/t", {}, {"http": "https://p:443"}, True, True),
        ("http://127.0.0.1:8080/t", {}, {"http": "socks5h://p:1080"}, True, True),
        ("http://127.0.0.1:8080/t", {}, {"all": "http://p:3128"}, False, True),
        ("http://127.0.0.1:8080/t", {}, {"http://127.0.0.1": "http://p:3128"}, True, True),
        ("http://127.0.0.1:8080/t", {}, {"http://localhost": "http://p:3128"}, True, False),
    ],
)
def test_sends_in_clear_follows_requests_proxy_selection(
    url: str, environment: dict[str, str], proxies: dict[str, str] | None, trust_env: bool,
    in_clear: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """https never; http to a non-loopback host always; http to loopback exactly when
    requests (environment, NO_PROXY, trust_env, Session proxies) would use any proxy."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    session = _session(proxies, trust_env)
    assert sends_in_clear(url, session) is in_clear
    if proxies is None and trust_env:  # what the API side sees: the environment alone
        assert sends_in_clear(url) is in_clear
    if url.startswith("http://") and is_loopback_host(urlsplit(url).hostname):
        assert (proxy_for(url, session) is not None) is in_clear


@given(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.sampled_from(["", ".localhost", ".127.0.0.1", ".localhost."]),
)
def test_no_other_host_name_is_exempt(label: str, suffix: str) -> None:
    """Over plain http, every host name other than exactly localhost sends in clear."""
    host = label + suffix
    assert sends_in_clear(f"http://{host}:8080/api") is (host != "localhost")
