"""OAuth 2.0 Client Credentials authentication for requests.

::

    session.auth = ClientCredentialsAuth(token_url, client_id, client_secret, scope="read")
"""

from .auth import ClientCredentialsAuth
from .errors import (
    ConfigurationError,
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
    "InsecureTransportError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenResponseError",
    "OAuthError",
    "Token",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenError",
    "TokenRetry",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "__version__",
]
