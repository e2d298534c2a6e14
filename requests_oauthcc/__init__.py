"""OAuth 2.0 Client Credentials authentication for requests.

::

    session.auth = ClientCredentialsAuth(token_url, client_id, client_secret, scope="read")
"""

from typing import TYPE_CHECKING, Any

from .auth import ClientCredentialsAuth
from .errors import (
    ConfigurationError,
    CredentialError,
    DiscoveryError,
    InsecureTransportError,
    InvalidClientError,
    InvalidDPoPProofError,
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
    UseDPoPNonceError,
)
from .redaction import Secret
from .retry import TokenRetry
from .token import Token

if TYPE_CHECKING:
    from .cache import CacheError, EncryptedTokenCache, MemoryTokenCache, TokenCache
    from .discovery import Issuer
    from .dpop import DPoPKey
    from .file_cache import FileTokenCache
    from .platforms import (
        KUBERNETES_TOKEN_PATH,
        GitHubActionsOIDC,
        WorkloadIdentity,
        entra_workload_identity,
        kubernetes_token,
    )
    from .private_keys import PrivateKey
    from .redis_cache import RedisTokenCache
    from .sources import AssertionFile, SecretFile

# Imported on first use (PEP 562), so that `import requests_oauthcc` stays light.
_LAZY = {
    "PrivateKey": "private_keys",
    "AssertionFile": "sources",
    "SecretFile": "sources",
    "CacheError": "cache",
    "EncryptedTokenCache": "cache",
    "MemoryTokenCache": "cache",
    "TokenCache": "cache",
    "Issuer": "discovery",
    "DPoPKey": "dpop",
    "FileTokenCache": "file_cache",
    "GitHubActionsOIDC": "platforms",
    "KUBERNETES_TOKEN_PATH": "platforms",
    "WorkloadIdentity": "platforms",
    "entra_workload_identity": "platforms",
    "kubernetes_token": "platforms",
    "RedisTokenCache": "redis_cache",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__version__ = "0.3.0"

__all__ = [
    "KUBERNETES_TOKEN_PATH",
    "AssertionFile",
    "CacheError",
    "ClientCredentialsAuth",
    "ConfigurationError",
    "CredentialError",
    "DPoPKey",
    "DiscoveryError",
    "EncryptedTokenCache",
    "FileTokenCache",
    "GitHubActionsOIDC",
    "InsecureTransportError",
    "InvalidClientError",
    "InvalidDPoPProofError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenResponseError",
    "Issuer",
    "MemoryTokenCache",
    "OAuthError",
    "PrivateKey",
    "RedisTokenCache",
    "Secret",
    "SecretFile",
    "Token",
    "TokenCache",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenError",
    "TokenRetry",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UseDPoPNonceError",
    "WorkloadIdentity",
    "__version__",
    "entra_workload_identity",
    "kubernetes_token",
]
