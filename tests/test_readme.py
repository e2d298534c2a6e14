"""Every Python example in README.md runs, against the local server, so the docs cannot rot.

The examples keep their real-looking URLs (https://auth.example.com/..., Auth0, Okta, Entra,
Keycloak, Cognito): HTTPS_PROXY sends them through a local CONNECT proxy to a local TLS
server whose certificate covers those host names, and REQUESTS_CA_BUNDLE trusts its CA.
Nothing in requests is patched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import requests_oauthcc.dpop  # noqa: F401 - see below
from requests_oauthcc import otel
from requests_oauthcc.testing import FakeIssuer, FederatedIdentity, OAuthTestServer

from .certs import make_pki
from .conftest import RedisProcess
from .keys import ec_pair, rsa_pair
from .proxy import ConnectProxy
from .redis_topologies import RedisCluster, RedisSentinels

pytest_plugins = ["pytester"]
# pytester drops the modules first imported during each test; a lazily imported module
# (requests_oauthcc.dpop) would then come back as a new module with new classes, while the
# package keeps the old ones. Imported here, it stays the same for every example.

README = Path(__file__).resolve().parent.parent / "README.md"
HOSTS = (
    "auth.example.com", "api.example.com", "example-tenant.eu.auth0.com", "example.okta.com",
    "login.microsoftonline.com", "keycloak.example.com",
    "example.auth.eu-west-1.amazoncognito.com",
)
SECRET = "readme-example-secret"
KEY_PASSWORD = "readme-key-password"
K8S_SUBJECT = "system:serviceaccount:payments:worker"


def examples() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        found.append((text[: match.start()].count("\n") + 1, match.group(1)))
    return found


EXAMPLES = examples()


@pytest.fixture(scope="module")
def proxy_hosts() -> list[str]:
    """The host names the examples asked the proxy for, across the module."""
    return []


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, proxy_hosts: list[str]
) -> Iterator[dict[str, str]]:
    """The docs server, the proxy in front of it, and the files the examples read."""
    directory = tmp_path_factory.mktemp("readme")
    pki = make_pki(directory, HOSTS)
    key = rsa_pair()
    key_file = directory / "client-key.pem"
    key_file.write_text(key.private_pem)
    dpop_key_file = directory / "dpop-key.pem"
    dpop_key_file.write_text(ec_pair().private_pem)
    encrypted_key_file = directory / "client-key-encrypted.pem"
    encrypted_key_file.write_bytes(key.encrypted_pem(KEY_PASSWORD.encode()))
    issuer = FakeIssuer().start()  # the platform of the workload identity recipes
    kubernetes = issuer.project(directory / "k8s", K8S_SUBJECT, "https://auth.example.com")
    entra = issuer.project(directory / "entra", K8S_SUBJECT, "api://AzureADTokenExchange")
    server = OAuthTestServer(
        {"my-client-id": SECRET}, client_keys={"my-client-id": key.public_pem},
        tls_clients={"my-client-id": "test-client"}, certfile=pki.server_cert,
        keyfile=pki.server_key, client_ca=pki.ca, catch_all=True,
        federated_clients={"my-client-id": [
            FederatedIdentity(issuer.url, K8S_SUBJECT, "https://auth.example.com"),
            FederatedIdentity(issuer.url, K8S_SUBJECT, "api://AzureADTokenExchange"),
            FederatedIdentity(issuer.url, issuer.github_subject, "https://auth.example.com"),
        ]},
    ).start()
    proxy = ConnectProxy(server.port)
    proxy.hosts = proxy_hosts  # shared, so the last test can see them
    yield {
        "HTTPS_PROXY": proxy.url, "REQUESTS_CA_BUNDLE": pki.ca, "CLIENT_SECRET": SECRET,
        "OAUTH_CLIENT_SECRET": SECRET,
        "CLIENT_KEY_FILE": str(key_file), "DPOP_KEY_FILE": str(dpop_key_file),
        "CLIENT_CERT_FILE": pki.client_cert,
        "CLIENT_CERT_KEY_FILE": pki.client_key, "TOKEN_CACHE_DIR": str(directory / "cache"),
        "TOKEN_CACHE_KEY": Fernet.generate_key().decode(),
        "CLIENT_ENCRYPTED_KEY_FILE": str(encrypted_key_file), "CLIENT_KEY_PASSWORD": KEY_PASSWORD,
        "SA_TOKEN_FILE": str(kubernetes.path), "AZURE_CLIENT_ID": "my-client-id",
        "AZURE_TENANT_ID": "0b1e5c4a-5a5e-4d6f-9f7e-2a3b4c5d6e7f",
        "AZURE_FEDERATED_TOKEN_FILE": str(entra.path), **issuer.environ(),
    }
    proxy.stop()
    server.stop()
    issuer.stop()


@pytest.fixture
def environment(world: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                start_redis: Callable[[], RedisProcess]) -> Iterator[None]:
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.lower() in ("no_proxy", "http_proxy", "all_proxy", "curl_ca_bundle") or \
                name.startswith("OAUTH_"):
            monkeypatch.delenv(name)
    for name, value in world.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(Path(world["TOKEN_CACHE_DIR"]).parent)
    monkeypatch.setenv("REDIS_URL", start_redis().url)
    yield
    os.environ.clear()
    os.environ.update(saved)
    otel.uninstrument()  # the OpenTelemetry example instruments every auth object


def test_the_readme_has_examples() -> None:
    """Guard: the extraction finds the README's examples (so the tests below mean something)."""
    assert len(EXAMPLES) >= 15
    assert any("def test_" in code for _, code in EXAMPLES)


@pytest.mark.parametrize(("line", "code"), EXAMPLES, ids=[f"README.md:{n}" for n, _ in EXAMPLES])
def test_example_runs(
    line: int, code: str, environment: None, pytester: pytest.Pytester,
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example at this line runs to the end without an exception."""
    if "def test_" in code:  # a pytest example: run it with the plugin, as a user would
        pytester.makepyfile(code)
        result = pytester.runpytest_subprocess("-p", "requests_oauthcc.testing")
        result.assert_outcomes(passed=code.count("def test_"))
        return
    if "REDIS_CLUSTER_URL" in code:  # started only for the examples that use them
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        sentinels: RedisSentinels = request.getfixturevalue("redis_sentinels")
        monkeypatch.setenv("REDIS_CLUSTER_URL", cluster.url)
        monkeypatch.setenv("REDIS_SENTINEL_URL", sentinels.url)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme_example"})


def test_every_example_host_was_really_called(proxy_hosts: list[str]) -> None:
    """The examples above went over the network to each host they name (via the proxy)."""
    if not proxy_hosts:
        pytest.skip("run together with test_example_runs")
    assert set(HOSTS) <= set(proxy_hosts)


def test_every_test_named_in_the_security_section_exists() -> None:
    """The Security section lists each guarantee next to the tests that prove it: each named
    test file and test function exists, so the table cannot point at nothing."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Security\n"):text.index("## Command line")]
    root = README.parent
    current = ""
    named = 0
    for match in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(test_\w+))?(?:\[[^\]`]*\])?`", section):
        path, test = match.groups()
        if path:
            current = path
            assert (root / current).is_file(), f"{current} is named but does not exist"
        if test:
            assert current, f"{test} is named before any test file"
            source = (root / current).read_text(encoding="utf-8")
            assert re.search(rf"^def {test}\(", source, re.M), f"{current}::{test} is missing"
            named += 1
    assert named >= 40
