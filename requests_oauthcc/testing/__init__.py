"""A local OAuth 2.0 authorization server and protected resource, for tests and the demo.

Stdlib only (PyJWT when JWT client authentication is exercised), on 127.0.0.1 with a free
port, one thread per connection::

    with OAuthTestServer(clients={"my-client": "my-secret"}, token_lifetime=60) as server:
        auth = ClientCredentialsAuth(server.token_url, "my-client", "my-secret")
        requests.get(server.resource_url, auth=auth)
        assert server.token_requests == 1
"""

from .clients import ClientRegistry
from .server import CannedResponse, IssuedToken, OAuthTestServer, TokenRequestRecord

__all__ = [
    "CannedResponse",
    "ClientRegistry",
    "IssuedToken",
    "OAuthTestServer",
    "TokenRequestRecord",
]
