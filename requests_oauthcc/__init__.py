"""OAuth 2.0 Client Credentials authentication for requests.

::

    session.auth = ClientCredentialsAuth(token_url, client_id, client_secret, scope="read")
"""

from .auth import ClientCredentialsAuth
from .cache import CacheError, EncryptedTokenCache, MemoryTokenCache, TokenCache
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
from .file_cache import FileTokenCache
from .redis_cache import RedisTokenCache
from .retry import TokenRetry
from .token import Token

__version__ = "0.1.0"

__all__ = [
    "CacheError",
    "ClientCredentialsAuth",
    "ConfigurationError",
    "DiscoveryError",
    "EncryptedTokenCache",
    "FileTokenCache",
    "InsecureTransportError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenResponseError",
    "Issuer",
    "MemoryTokenCache",
    "OAuthError",
    "RedisTokenCache",
    "SecretFile",
    "Token",
    "TokenCache",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenError",
    "TokenRetry",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "__version__",
]
