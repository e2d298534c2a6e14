"""Starts the real authorization servers once per test session: oidc-provider (an
independent, certified OpenID Provider), django-oauth-toolkit and Authlib's authorization
server (Flask integration).

Locally, without node or without `npm ci` having been run here, or without
`pip install -r tests/interop/requirements.txt`, the interop tests skip with the reason;
in CI (CI=true) that is a failure, since .ci/run installs them.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from ..conftest import missing
from .servers import (
    AWKWARD_ID,
    AWKWARD_SECRET,
    Client,
    InteropServer,
    start_process,
    stop_process,
)

HERE = Path(__file__).resolve().parent
BASIC_ID = "interop client:+%/&=~"
BASIC_SECRET = "s3cr3t:+%/ &=?#\"'<>"
POST_ID, POST_SECRET = "post-client", "post-client-secret"
JWT_ID, JWT_SECRET = "hmac-client", "hmac-client-secret-long-enough-for-hs256-xxxxxxxx"
RSA_ID, EC_ID = "rsa-key-client", "ec-key-client"


@dataclass
class Interop:
    issuer: str
    rsa_private_pem: str
    ec_private_pem: str
    jwt_resource: str = "https://api.example.test/jwt"
    opaque_resource: str = "https://api.example.test/opaque"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    def api(self, path: str = "data") -> str:
        return f"{self.issuer}/api/{path}"

    def token_requests(self) -> int:
        count: int = requests.get(f"{self.issuer}/_stats", timeout=5).json()["token_requests"]
        return count


def _keys() -> dict[str, Any]:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(key: Any) -> str:
        return str(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode())

    server = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_ec = ec.generate_private_key(ec.SECP256R1())
    signing = jwt.algorithms.RSAAlgorithm.to_jwk(server, as_dict=True)
    signing.pop("key_ops", None)  # PyJWT marks private JWKs "sign"; verifiers need "verify"
    signing.update({"kid": "server-key", "use": "sig", "alg": "RS256"})
    rsa_public = jwt.algorithms.RSAAlgorithm.to_jwk(client_rsa.public_key(), as_dict=True)
    rsa_public["kid"] = "rsa-1"
    ec_public = jwt.algorithms.ECAlgorithm.to_jwk(client_ec.public_key(), as_dict=True)
    ec_public["kid"] = "ec-1"
    return {"signing": signing, "rsa_public": rsa_public, "ec_public": ec_public,
            "rsa_pem": pem(client_rsa), "ec_pem": pem(client_ec)}


def _client(client_id: str, method: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": client_id, "grant_types": ["client_credentials"],
            "response_types": [], "redirect_uris": [], "scope": "read write",
            "token_endpoint_auth_method": method, **extra}


def _config(keys: dict[str, Any], clients: list[dict[str, Any]]) -> dict[str, Any]:
    rs = {"client_id": "resource-server", "client_secret": "rs-secret"}
    return {
        "token_ttl": 2,
        "jwt_resource": "https://api.example.test/jwt",
        "opaque_resource": "https://api.example.test/opaque",
        "signing_key": keys["signing"],
        "resource_server": rs,
        "clients": [*clients, {**rs, "grant_types": [], "response_types": [],
                               "redirect_uris": [],
                               "token_endpoint_auth_method": "client_secret_basic"}],
    }


def _start(config: dict[str, Any], directory: Path, env: dict[str, str] | None = None,
           ) -> tuple[subprocess.Popen[str], str]:
    """oidc-provider (server.mjs) with ``config``; ``(process, issuer)``."""
    node = shutil.which("node")
    if node is None:
        missing("node is not installed: the interop tests need Node.js")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        missing("oidc-provider is not installed: run `npm ci` in tests/interop")
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config))
    process, line = start_process([node, "server.mjs", str(config_path)], cwd=str(HERE),
                                  env=env, name="oidc-provider", timeout=30)
    issuer: str = json.loads(line)["issuer"]
    return process, issuer


PLAIN_BASIC_ID, PLAIN_BASIC_SECRET = "plain-basic-client", "plain-basic-secret"


@pytest.fixture(scope="session")
def interop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interop]:
    keys = _keys()
    config = _config(keys, [
        _client(PLAIN_BASIC_ID, "client_secret_basic", client_secret=PLAIN_BASIC_SECRET),
        _client(BASIC_ID, "client_secret_basic", client_secret=BASIC_SECRET),
        _client(POST_ID, "client_secret_post", client_secret=POST_SECRET),
        _client(JWT_ID, "client_secret_jwt", client_secret=JWT_SECRET),
        _client(RSA_ID, "private_key_jwt", jwks={"keys": [keys["rsa_public"]]}),
        _client(EC_ID, "private_key_jwt", jwks={"keys": [keys["ec_public"]]}),
    ])
    process, issuer = _start(config, tmp_path_factory.mktemp("interop"))
    try:
        yield Interop(issuer=issuer, rsa_private_pem=keys["rsa_pem"],
                      ec_private_pem=keys["ec_pem"])
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def oidc_provider(interop: Interop) -> InteropServer:
    """oidc-provider as the shared matrix sees it (test_matrix.py)."""

    def revoke(access_token: str) -> None:
        # Every matrix test that revokes uses the client_secret_post client's token.
        response = requests.post(f"{interop.issuer}/token/revocation", timeout=10, data={
            "token": access_token, "client_id": POST_ID, "client_secret": POST_SECRET})
        assert response.status_code == 200, response.status_code

    return InteropServer(
        name="oidc-provider", token_url=interop.token_url, api_url=interop.api(),
        clients={
            "basic": Client(PLAIN_BASIC_ID, "client_secret_basic", PLAIN_BASIC_SECRET),
            # oidc-provider holds ids and secrets to RFC 6749 Appendix A (VSCHAR: printable
            # ASCII), so this awkward pair has every character but the non-ASCII ones.
            "awkward_basic": Client(BASIC_ID, "client_secret_basic", BASIC_SECRET),
            "post": Client(POST_ID, "client_secret_post", POST_SECRET),
            "client_secret_jwt": Client(JWT_ID, "client_secret_jwt", JWT_SECRET),
            "private_key_jwt": Client(RSA_ID, "private_key_jwt", options={
                "private_key": interop.rsa_private_pem, "private_key_id": "rsa-1"}),
        },
        token_requests=interop.token_requests, revoke=revoke, issuer=interop.issuer,
    )


@dataclass
class MtlsInterop:
    issuer: str
    pki: Any

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    def api(self, path: str = "data") -> str:
        return f"{self.issuer}/api/{path}"


@pytest.fixture(scope="session")
def interop_mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsInterop]:
    """oidc-provider over https with its RFC 8705 features on, for the mTLS methods."""
    import base64

    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..certs import make_pki

    directory = tmp_path_factory.mktemp("interop-mtls")
    pki = make_pki(directory)
    self_signed = x509.load_pem_x509_certificate(Path(pki.self_signed_cert).read_bytes())
    public_key = self_signed.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    jwk["x5c"] = [base64.b64encode(self_signed.public_bytes(serialization.Encoding.DER))
                  .decode()]
    bound = {"tls_client_certificate_bound_access_tokens": True}
    # The *-dpop clients get tokens bound to a DPoP key instead of their certificate
    # (oidc-provider binds a token to one of the two): test_dpop_oidc_provider.py.
    config = _config(_keys(), [
        _client("mtls-client", "tls_client_auth", tls_client_auth_subject_dn="CN=test-client",
                **bound),
        _client("self-signed-client", "self_signed_tls_client_auth", jwks={"keys": [jwk]},
                **bound),
        _client("mtls-dpop-client", "tls_client_auth",
                tls_client_auth_subject_dn="CN=test-client"),
        _client("self-signed-dpop-client", "self_signed_tls_client_auth",
                jwks={"keys": [jwk]}),
    ])
    config["tls"] = {"key": pki.server_key, "cert": pki.server_cert,
                     "client_ca": [pki.ca, pki.self_signed_cert]}
    process, issuer = _start(config, directory, {"NODE_EXTRA_CA_CERTS": pki.ca})
    try:
        yield MtlsInterop(issuer=issuer, pki=pki)
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def dot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServer]:
    """django-oauth-toolkit mounted under /o/ (dot_server.py), its API answering a bad token
    with DOT's default bare 403; it publishes RFC 8414 metadata at {base}/o/.well-known/...
    with issuer {base}/o. It has no JWT client authentication."""
    if (importlib.util.find_spec("oauth2_provider") is None
            or importlib.util.find_spec("django") is None):
        missing("django-oauth-toolkit is not installed: "
                "run `pip install -r tests/interop/requirements.txt`")
    clients = {
        "basic": Client("dot-basic-client", "client_secret_basic", "dot-basic-secret"),
        "awkward_basic": Client(AWKWARD_ID, "client_secret_basic", AWKWARD_SECRET),
        "post": Client("dot-post-client", "client_secret_post", "dot-post-secret"),
    }
    directory = tmp_path_factory.mktemp("dot")
    config_path = directory / "config.json"
    config_path.write_text(json.dumps({
        "token_ttl": 2,
        "directory": str(directory),
        "clients": [{"client_id": c.client_id, "client_secret": c.client_secret}
                    for c in clients.values()],
    }), encoding="utf-8")
    process, line = start_process([sys.executable, "dot_server.py", str(config_path)],
                                  cwd=str(HERE), name="django-oauth-toolkit")
    base: str = json.loads(line)["base_url"]
    api_url = f"{base}/api/data"

    def token_requests() -> int:
        count: int = requests.get(f"{base}/_stats", timeout=5).json()["token_requests"]
        return count

    def revoke(access_token: str) -> None:
        # DOT revokes only a token issued to the client that asks (RFC 7009 §2.1) and
        # answers 200 to any other: ask as its owner (the API says who), then as each client
        # until the API stops taking it (each ask costs DOT a slow secret hash).
        owner = requests.get(api_url, timeout=10, headers={
            "Authorization": f"Bearer {access_token}"}).json().get("client_id")
        for client in sorted(clients.values(), key=lambda c: c.client_id != owner):
            response = requests.post(f"{base}/o/revoke_token/", timeout=10, data={
                "token": access_token, "token_type_hint": "access_token",
                "client_id": client.client_id, "client_secret": client.client_secret})
            assert response.status_code == 200, response.status_code
            check = requests.get(api_url, timeout=10,
                                 headers={"Authorization": f"Bearer {access_token}"})
            if check.status_code != 200:
                return
        raise AssertionError("django-oauth-toolkit still accepts the revoked token")

    try:
        yield InteropServer(
            name="django-oauth-toolkit", token_url=f"{base}/o/token/", api_url=api_url,
            clients=clients, token_requests=token_requests, revoke=revoke,
            issuer=f"{base}/o", refresh_on=(401, 403), token_ttl=2.0)
    finally:
        stop_process(process)


AUTHLIB_KEY_ID = "authlib-ec-1"


def _authlib_clients() -> tuple[dict[str, Client], dict[str, Any]]:
    """The clients registered at the Authlib server, by role, and the public JWKS of the
    private_key_jwt one: a P-256 key made for this session (ES256, under a kid)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update({"kid": AUTHLIB_KEY_ID, "alg": "ES256", "use": "sig"})
    clients = {
        "basic": Client("authlib-basic", "client_secret_basic", "authlib-basic-secret"),
        "awkward_basic": Client(AWKWARD_ID, "client_secret_basic", AWKWARD_SECRET),
        "post": Client("authlib-post", "client_secret_post", "authlib-post-secret"),
        "client_secret_jwt": Client("authlib-hmac", "client_secret_jwt",
                                    "authlib-hmac-secret-long-enough-for-hs256-xxxxxxxx"),
        "private_key_jwt": Client("authlib-ec", "private_key_jwt", options={
            "private_key": pem, "private_key_id": AUTHLIB_KEY_ID}),
    }
    return clients, {"keys": [public]}


def _authlib_revoke(base_url: str, clients: Mapping[str, Client], access_token: str) -> None:
    """Revoke at Authlib's RFC 7009 endpoint, as the token's owner: the endpoint refuses
    anyone else's token (invalid_grant). The owner is who the API says the token is for; a
    token the API already refuses has nothing left to revoke."""
    import base64
    import secrets
    import time
    from urllib.parse import quote

    import jwt

    api = requests.get(f"{base_url}/api/data", timeout=10,
                       headers={"Authorization": f"Bearer {access_token}"})
    if api.status_code != 200:
        return
    owner = next(c for c in clients.values() if c.client_id == api.json()["client_id"])
    form = {"token": access_token, "token_type_hint": "access_token"}
    headers: dict[str, str] = {}
    if owner.auth_method == "client_secret_basic":
        assert owner.client_secret is not None  # encoded the way Authlib decodes it
        pair = f"{quote(owner.client_id, safe='')}:{quote(owner.client_secret, safe='')}"
        headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
    elif owner.auth_method == "client_secret_post":
        assert owner.client_secret is not None
        form.update(client_id=owner.client_id, client_secret=owner.client_secret)
    else:
        now = int(time.time())
        claims = {"iss": owner.client_id, "sub": owner.client_id, "iat": now,
                  "exp": now + 60, "aud": f"{base_url}/oauth/token",
                  "jti": secrets.token_urlsafe(16)}
        if owner.auth_method == "client_secret_jwt":
            assert owner.client_secret is not None
            assertion = jwt.encode(claims, owner.client_secret, algorithm="HS256")
        else:
            assertion = jwt.encode(claims, owner.options["private_key"], algorithm="ES256",
                                   headers={"kid": owner.options["private_key_id"]})
        form.update(client_assertion=assertion, client_assertion_type=(
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
    revoked = requests.post(f"{base_url}/oauth/revoke", data=form, headers=headers,
                            timeout=10)
    assert revoked.status_code == 200, revoked.text


@pytest.fixture(scope="session")
def authlib_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServer]:
    """Authlib's authorization server (its Flask integration), once per session."""
    import importlib.util
    import sys

    for module in ("authlib", "flask"):
        if importlib.util.find_spec(module) is None:
            missing(f"{module} is not installed: run "
                    "`python3 -m pip install -r tests/interop/requirements.txt`")
    clients, jwks = _authlib_clients()
    config = {"token_ttl": 2, "clients": [
        {"client_id": c.client_id, "token_endpoint_auth_method": c.auth_method,
         **({"client_secret": c.client_secret} if c.client_secret is not None else {}),
         **({"jwks": jwks} if c.auth_method == "private_key_jwt" else {})}
        for c in clients.values()
    ]}
    config_path = tmp_path_factory.mktemp("authlib") / "config.json"
    config_path.write_text(json.dumps(config))
    process, line = start_process([sys.executable, "authlib_server.py", str(config_path)],
                                  cwd=str(HERE), name="Authlib's server")
    base_url: str = json.loads(line)["base_url"]

    def token_requests() -> int:
        count: int = requests.get(f"{base_url}/_stats", timeout=5).json()["token_requests"]
        return count

    try:
        yield InteropServer(
            name="authlib", token_url=f"{base_url}/oauth/token",
            api_url=f"{base_url}/api/data", clients=clients, token_requests=token_requests,
            revoke=partial(_authlib_revoke, base_url, clients), issuer=base_url,
            token_ttl=2.0)
    finally:
        stop_process(process)
