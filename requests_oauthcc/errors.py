"""The exception hierarchy: every error this package raises, and nothing else.

::

    requests.RequestException
     └── OAuthError
          ├── ConfigurationError            (also a ValueError) bad arguments, missing extra
          ├── InsecureTransportError        a token would travel in the clear
          ├── DiscoveryError                server metadata missing, unreadable or mismatched
          └── TokenEndpointError            the token endpoint gave no token
               ├── TokenEndpointConnectionError  (also a requests.ConnectionError) unreachable
               ├── TokenError               an RFC 6749 §5.2 error response
               │    ├── InvalidRequestError, InvalidClientError, InvalidGrantError,
               │    ├── UnauthorizedClientError, UnsupportedGrantTypeError,
               │    │   InvalidScopeError, InvalidTargetError
               │    └── InvalidDPoPProofError, UseDPoPNonceError  (RFC 9449)
               └── InvalidTokenResponseError  an answer that is not a usable token

Messages name the token URL and the HTTP status; they never hold a client secret, an
assertion or an access token (see :mod:`requests_oauthcc.redaction`), and server-supplied
text in them is stripped of control characters and bounded in length.
"""

from __future__ import annotations

import requests

__all__ = [
    "ConfigurationError",
    "CredentialError",
    "DiscoveryError",
    "InsecureTransportError",
    "InvalidClientError",
    "InvalidDPoPProofError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenResponseError",
    "OAuthError",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UseDPoPNonceError",
    "error_type",
    "token_error_class",
]


class OAuthError(requests.RequestException):
    """Base class of every error raised by requests-oauthcc.

    A subclass of :class:`requests.RequestException`, so code that already catches
    requests' errors catches ours too.
    """


class ConfigurationError(OAuthError, ValueError):
    """An argument or environment setting is wrong; the message says which and how to fix it."""


class CredentialError(OAuthError):
    """The client's own credential could not be had when a token request needed it.

    A credential file that was readable when the auth was built has gone, or became
    unreadable or empty; a client assertion has expired and its source gave no newer one
    (the platform did not rotate it); a platform's token service (GitHub Actions OIDC)
    failed. Raised before anything is sent to the token endpoint. At construction the same
    problems are a :class:`ConfigurationError`. The message never shows the credential.
    """


class InsecureTransportError(OAuthError):
    """A token or a secret would have crossed the network unencrypted: plain HTTP to a host
    other than ``localhost``, 127.0.0.0/8 or ``::1``, or to one of those through a proxy."""


class DiscoveryError(OAuthError):
    """The authorization server's metadata (RFC 8414 / OpenID Connect discovery) is unusable.

    Not found, not JSON, an ``issuer`` different from the one asked for, no
    ``token_endpoint``, or no client authentication method that fits the credentials.
    ``issuer`` is the issuer asked for; ``response`` the last metadata response, if any.
    """

    def __init__(
        self, message: str, *, issuer: str, response: requests.Response | None = None
    ) -> None:
        super().__init__(message, response=response)
        self.issuer = issuer


class TokenEndpointError(OAuthError):
    """The token endpoint did not give a token.

    Raised as is for an answer that is neither a token nor an RFC 6749 §5.2 error
    (a 5xx HTML page, a redirect). ``token_url`` and ``status_code`` say where and what;
    ``response`` is the :class:`requests.Response`, with the credentials removed from
    ``response.request``.
    """

    def __init__(
        self,
        message: str,
        *,
        token_url: str,
        status_code: int | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message, response=response)
        self.token_url = token_url
        self.status_code = status_code


class TokenEndpointConnectionError(TokenEndpointError, requests.ConnectionError):
    """The token endpoint could not be reached: connection refused, DNS, TLS or a timeout.

    Also a :class:`requests.ConnectionError`; the original exception is ``__cause__``.
    """


class TokenError(TokenEndpointError):
    """The token endpoint answered with an RFC 6749 §5.2 error.

    ``error`` is the error code (``invalid_client``, ...), ``error_description`` and
    ``error_uri`` the optional fields. Known codes raise the matching subclass; unknown
    codes raise this class.
    """

    def __init__(
        self,
        message: str,
        *,
        token_url: str,
        error: str,
        error_description: str | None = None,
        error_uri: str | None = None,
        status_code: int | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message, token_url=token_url, status_code=status_code, response=response)
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri


class InvalidRequestError(TokenError):
    """``invalid_request``: the token request is malformed."""


class InvalidClientError(TokenError):
    """``invalid_client``: unknown client, wrong secret or unsupported authentication method."""


class InvalidGrantError(TokenError):
    """``invalid_grant``: the grant was refused."""


class UnauthorizedClientError(TokenError):
    """``unauthorized_client``: the client may not use the client credentials grant."""


class UnsupportedGrantTypeError(TokenError):
    """``unsupported_grant_type``: the server does not offer the client credentials grant."""


class InvalidScopeError(TokenError):
    """``invalid_scope``: a requested scope is unknown or not allowed for this client."""


class InvalidTargetError(TokenError):
    """``invalid_target`` (RFC 8707): a requested resource or audience is refused."""


class InvalidDPoPProofError(TokenError):
    """``invalid_dpop_proof`` (RFC 9449 §5): the server refused the DPoP proof (often a
    clock off by more than the server allows for ``iat``, or an algorithm it does not
    accept)."""


class UseDPoPNonceError(TokenError):
    """``use_dpop_nonce`` (RFC 9449 §8): the server wants its nonce in the DPoP proof; the
    request was sent again with the nonce it gave, and it still asked."""


class InvalidTokenResponseError(TokenEndpointError):
    """The token endpoint answered, but not with a usable token.

    Not JSON, not a JSON object, no ``access_token``, an unknown ``token_type``, a bad
    ``expires_in``, or a body over the size limit.
    """


_ERROR_CLASSES: dict[str, type[TokenError]] = {
    "invalid_request": InvalidRequestError,
    "invalid_client": InvalidClientError,
    "invalid_grant": InvalidGrantError,
    "unauthorized_client": UnauthorizedClientError,
    "unsupported_grant_type": UnsupportedGrantTypeError,
    "invalid_scope": InvalidScopeError,
    "invalid_target": InvalidTargetError,
    "invalid_dpop_proof": InvalidDPoPProofError,
    "use_dpop_nonce": UseDPoPNonceError,
}


def token_error_class(error: str) -> type[TokenError]:
    """The exception class for an RFC 6749 error code; :class:`TokenError` if unknown."""
    return _ERROR_CLASSES.get(error, TokenError)


def error_type(exc: BaseException) -> str:
    """What failed, named from a bounded set (for events and metrics, where a hostile
    server's text must not go): a registered OAuth error code (``invalid_client``,
    ``use_dpop_nonce``, ...), else the exception's type name."""
    if isinstance(exc, TokenError) and exc.error in _ERROR_CLASSES:
        return exc.error
    return type(exc).__name__
