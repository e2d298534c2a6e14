"""A local OAuth 2.0 authorization server and protected resource, for tests and the demo.

Stdlib only (PyJWT when JWT client authentication is exercised or a DPoP proof is checked),
on 127.0.0.1 with a free port, one thread per connection::

    with OAuthTestServer(clients={"my-client": "my-secret"}, token_lifetime=60) as server:
        auth = ClientCredentialsAuth(server.token_url, "my-client", "my-secret")
        requests.get(server.resource_url, auth=auth)
        assert server.token_requests == 1

With pytest, ``-p requests_oauthcc.testing`` (or ``pytest_plugins =
["requests_oauthcc.testing"]`` in a conftest.py) provides the fixtures ``oauth_server``
and ``oauth_auth``; nothing is registered unless asked for.

DPoP (RFC 9449): the server binds tokens to a proof's key and checks proofs at the resource
(options ``dpop_nonce``, ``dpop_required``, ``dpop_algs``); its checker,
:class:`DPoPProofChecker`, can check proofs for your own servers too.

Credentials from the platform (RFC 7521 §4.2, RFC 7523 §2.2): :class:`FakeIssuer` is an
OpenID Connect issuer on 127.0.0.1 that mints JWTs (:meth:`FakeIssuer.mint`), rotates its
signing key, serves GitHub Actions' ID-token endpoint (:meth:`FakeIssuer.environ` gives the
``ACTIONS_ID_TOKEN_REQUEST_*`` variables) and writes kubelet-style projected token files
(:meth:`FakeIssuer.project` -> :class:`ProjectedToken`, rotated atomically). The server
accepts such tokens as client assertions from the clients given as
``federated_clients={client_id: FederatedIdentity(issuer.url, subject)}``::

    with FakeIssuer() as issuer, OAuthTestServer(federated_clients={
        "app": FederatedIdentity(issuer.url, "system:serviceaccount:ns:app"),
    }) as server:
        token = issuer.project(tmp_path, "system:serviceaccount:ns:app", server.token_url)
        ...  # a client sending token.path's content as its client_assertion

Rotation: ``clients`` and ``client_keys`` values may be sequences (old and new secrets or
keys, all accepted), and every :class:`TokenRequestRecord` has a ``credential``
fingerprint saying which one was used: compare it with :func:`credential_fingerprint`.
"""

from .clients import ClientRegistry
from .dpop import CheckedProof, DPoPError, DPoPProofChecker
from .federation import FederatedIdentity
from .fingerprints import credential_fingerprint
from .platform import FakeIssuer, ProjectedToken
from .server import CannedResponse, IssuedToken, OAuthTestServer, TokenRequestRecord

__all__ = [
    "CannedResponse",
    "CheckedProof",
    "ClientRegistry",
    "DPoPError",
    "DPoPProofChecker",
    "FakeIssuer",
    "FederatedIdentity",
    "IssuedToken",
    "OAuthTestServer",
    "ProjectedToken",
    "TokenRequestRecord",
    "credential_fingerprint",
]

try:  # the pytest plugin: fixtures oauth_server and oauth_auth (``-p requests_oauthcc.testing``)
    from .plugin import oauth_auth, oauth_server
except ImportError:  # pytest is not installed: the server alone still works
    pass
else:
    __all__ += ["oauth_auth", "oauth_server"]
