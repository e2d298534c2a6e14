"""OAuth 2.0 Client Credentials authentication for requests.

::

    session.auth = ClientCredentialsAuth(token_url, client_id, client_secret, scope="read")
"""

from .auth import ClientCredentialsAuth
from .client_auth import SecretFile
from .discovery import Issuer
from .errors import (
    ConfigurationError,
    DiscoveryError,
    InsecureTransportError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenResponseError,
    OAuthError,
    TokenEndpointConnectionError,
    TokenEndpointError,
    TokenError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from .retry import TokenRetry
from .token import Token

__version__ = "0.1.0"

__all__ = [
    "ClientCredentialsAuth",
    "ConfigurationError",
    "DiscoveryError",
    "InsecureTransportError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenResponseError",
    "Issuer",
    "OAuthError",
    "SecretFile",
    "Token",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenError",
    "TokenRetry",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "__version__",
]
