"""Client authentication methods: how the client proves who it is to the token endpoint.

Each method is a frozen value with one job: given the client id and token URL, say which
headers and form fields authenticate this token request (:class:`ClientAuthParts`).
Names are those of the IANA "OAuth Token Endpoint Authentication Methods" registry
(RFC 7591), as passed to ``auth_method=``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Protocol
from urllib.parse import quote

from ._frozen import Frozen
from .errors import ConfigurationError, CredentialError
from .form import check_text
from .redaction import Secret, SensitiveText, hidden

if TYPE_CHECKING:  # only some methods need these: imported where used
    from .private_keys import PrivateKey

__all__ = [
    "AUTH_METHODS",
    "ClientAssertion",
    "ClientAuthMethod",
    "ClientAuthParts",
    "ClientCredentials",
    "ClientSecretBasic",
    "ClientSecretJWT",
    "ClientSecretPost",
    "PrivateKeyJWT",
    "SecretSource",
    "SelfSignedTLSClientAuth",
    "TLSClientAuth",
    "default_auth_method",
    "hold_secret",
    "make_client_auth",
    "resolve_secret",
]

logger = logging.getLogger(__name__)

SecretSource = str | Secret | Callable[[], str]
"""A client secret, or a zero-argument callable returning it (read at each token request)."""

DEFAULT_ASSERTION_LIFETIME = 60.0


class ClientAuthParts(Frozen):
    """What one token request carries to authenticate the client.

    Header values and form values that are credentials are
    :class:`~requests_oauthcc.redaction.SensitiveText`, so no traceback local shows them.
    ``secrets`` lists the sensitive strings sent (secret, Basic value, assertion), so that
    anything echoed back by the server is redacted before it reaches a message or a log.
    """

    __slots__ = _fields = ("headers", "form", "secrets", "invalid_client_hint")
    _shown = ("invalid_client_hint",)

    headers: Final[Mapping[str, str]]
    form: Final[Sequence[tuple[str, str]]]
    secrets: Final[Sequence[str]]
    invalid_client_hint: Final[str]
    """Advice added to the message when the server refuses the client (``invalid_client``)."""

    def __init__(
        self, headers: Mapping[str, str] | None = None, form: Sequence[tuple[str, str]] = (),
        secrets: Sequence[str] = (), invalid_client_hint: str = "",
    ) -> None:
        self.headers = {} if headers is None else headers
        self.form = form
        self.secrets = secrets
        self.invalid_client_hint = invalid_client_hint


class ClientAuthMethod(Protocol):
    """The interface every client authentication method implements."""

    name: ClassVar[str]

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        """Headers and form fields that authenticate one token request."""
        ...


def hold_secret(secret: SecretSource | None) -> SecretSource | None:
    """``secret`` as this package keeps it: a plain string is wrapped in :class:`Secret`
    (so no ``repr``, log or captured frame shows it); a callable is kept as is; anything
    else (bytes, say: refused later) is hidden from ``repr`` too."""
    if isinstance(secret, str):
        return Secret(secret)
    return secret if secret is None or callable(secret) else hidden(secret)


def resolve_secret(secret: SecretSource) -> SensitiveText:
    """The secret itself: ``secret``, or what the callable returns now.

    Raises :class:`ConfigurationError` when it is not a non-empty string, or
    :class:`~requests_oauthcc.CredentialError` when a callable (asked at a token request)
    gives something else or fails.
    """
    if not callable(secret):
        return _checked_secret(secret)
    from .sources import ask

    failure = None
    try:  # no frame shows what came: hidden at once
        return _checked_secret(hidden(ask(secret, "the client_secret callable")))
    except ConfigurationError as exc:
        failure = str(exc)
    raise CredentialError(f"the client_secret callable gave no usable secret: {failure}")


def _checked_secret(value: object) -> SensitiveText:
    if isinstance(value, Secret):
        value = SensitiveText(value.reveal())
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            "client_secret must be a non-empty str or a callable returning one; "
            f"got {type(value).__name__}{' (empty)' if value == '' else ''}"
        )
    return SensitiveText(check_text("client_secret", value))


def _form_encode(value: str) -> str:
    """``value`` form-urlencoded for a Basic credential (RFC 6749 §2.3.1, Appendix B).

    UTF-8, every byte but letters, digits and ``-._~`` percent-encoded, and a space as
    ``%20`` rather than Appendix B's ``+``: every form decoder reads ``%20`` as a space,
    while servers that percent-decode Basic credentials without the form rules (Authlib's)
    would read ``+`` as a plus.
    """
    return quote(value, safe="", encoding="utf-8")


def _secret_forms(client_id: str, secret: str) -> tuple[SensitiveText, ...]:
    """The Basic credential of RFC 6749 §2.3.1, then the secret in the forms a server may
    echo it in besides the encodings the redactor derives itself: Basic without the
    form-encoding (as many clients send it) and the secret alone in base64."""
    def b64(text: str) -> SensitiveText:
        return SensitiveText(base64.b64encode(text.encode("utf-8")).decode("ascii"))

    return (b64(f"{_form_encode(client_id)}:{_form_encode(secret)}"),
            SensitiveText(secret), b64(f"{client_id}:{secret}"), b64(secret))


class ClientSecretBasic(Frozen):
    """``client_secret_basic``: HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).

    The id and secret are each form-urlencoded before being joined with ``:`` and
    base64-encoded, so ids and secrets holding ``:``, ``+``, ``%``, spaces or non-ASCII
    characters reach the server intact (a space as ``%20``: see :func:`_form_encode`).
    ``client_id_in_body``: send ``client_id`` in the form too, as some servers require
    (RFC 6749 does not ask for it).
    """

    name: ClassVar[str] = "client_secret_basic"
    __slots__ = _fields = ("secret", "client_id_in_body")
    _shown = ("client_id_in_body",)
    secret: Final[SecretSource]
    client_id_in_body: Final[bool]

    def __init__(self, secret: SecretSource, client_id_in_body: bool = False) -> None:
        self.secret = secret
        self.client_id_in_body = client_id_in_body

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        secret = resolve_secret(self.secret)
        basic, *_ = forms = _secret_forms(client_id, secret)
        return ClientAuthParts(
            headers={"Authorization": SensitiveText("Basic " + basic)},
            form=(("client_id", client_id),) if self.client_id_in_body else (),
            secrets=forms, invalid_client_hint=_encoding_hint(client_id, secret),
        )


def _encoding_hint(client_id: str, secret: str) -> str:
    """Why a server may refuse these Basic credentials, when the form-encoding changed them."""
    changed = [name for name, value in (("client_id", client_id), ("client_secret", secret))
               if _form_encode(value) != value]
    if not changed:
        return ""
    return (
        f"the {' and the '.join(changed)} {'hold' if len(changed) > 1 else 'holds'} "
        "characters that client_secret_basic form-encodes before base64 (RFC 6749 §2.3.1), "
        "and some servers do not decode them: try auth_method='client_secret_post'"
    )


class ClientSecretPost(Frozen):
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the form body."""

    name: ClassVar[str] = "client_secret_post"
    __slots__ = _fields = ("secret",)
    secret: Final[SecretSource]

    def __init__(self, secret: SecretSource) -> None:
        self.secret = secret

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        secret = resolve_secret(self.secret)
        return ClientAuthParts(
            form=(("client_id", client_id), ("client_secret", secret)),
            secrets=_secret_forms(client_id, secret),
        )


class PrivateKeyJWT(Frozen):
    """``private_key_jwt`` (RFC 7523 §2.2): an assertion signed with the client's private key.

    Claims: ``iss`` = ``sub`` = client id, ``aud`` = ``assertion_audience`` or the token
    URL, a unique ``jti``, ``iat`` and a short ``exp``; header ``kid`` when known. A fresh
    assertion is signed for every token request.
    """

    name: ClassVar[str] = "private_key_jwt"
    __slots__ = _fields = ("key", "assertion_audience", "assertion_lifetime")
    _shown = ("assertion_audience", "assertion_lifetime")
    key: Final[PrivateKey]
    assertion_audience: Final[str | None]
    assertion_lifetime: Final[float]

    def __init__(self, key: PrivateKey, assertion_audience: str | None = None,
                 assertion_lifetime: float = DEFAULT_ASSERTION_LIFETIME) -> None:
        self.key = key
        self.assertion_audience = assertion_audience
        self.assertion_lifetime = assertion_lifetime

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        from ._jwt import sign_assertion

        assertion = SensitiveText(sign_assertion(
            self.key.current(), client_id=client_id,
            audience=self.assertion_audience or token_url, lifetime=self.assertion_lifetime,
        ))
        return _assertion_parts(client_id, assertion)


class ClientAssertion(Frozen):
    """A client assertion made elsewhere (RFC 7521 §4.2, RFC 7523 §2.2): a JWT the platform
    hands to the workload (a Kubernetes service-account token, an Entra ID federated token,
    a GitHub Actions ID token), sent as ``client_assertion``; ``client_id`` is sent too when
    the client has one. Registered as ``private_key_jwt``: the assertion is signed with the
    platform's private key, which the authorization server trusts.

    ``source``: a zero-argument callable returning the assertion (an
    :class:`~requests_oauthcc.sources.AssertionFile`, a
    :class:`~requests_oauthcc.platforms.GitHubActionsOIDC`, your own function), asked at
    each token request through :func:`~requests_oauthcc.sources.current_assertion`.
    """

    name: ClassVar[str] = "private_key_jwt"
    __slots__ = _fields = ("source",)
    source: Final[Callable[[], str]]

    def __init__(self, source: Callable[[], str]) -> None:
        self.source = source

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        from .sources import current_assertion

        assertion = current_assertion(self.source)
        parts = _assertion_parts(client_id, assertion)
        return ClientAuthParts(form=parts.form if client_id else parts.form[1:],
                               secrets=parts.secrets)


class ClientSecretJWT(Frozen):
    """``client_secret_jwt``: the same assertion, signed with HMAC keyed by the secret."""

    name: ClassVar[str] = "client_secret_jwt"
    __slots__ = _fields = ("secret", "alg", "assertion_audience", "assertion_lifetime")
    _shown = ("alg", "assertion_audience", "assertion_lifetime")
    secret: Final[SecretSource]
    alg: Final[str]
    assertion_audience: Final[str | None]
    assertion_lifetime: Final[float]

    def __init__(self, secret: SecretSource, alg: str = "HS256",
                 assertion_audience: str | None = None,
                 assertion_lifetime: float = DEFAULT_ASSERTION_LIFETIME) -> None:
        self.secret = secret
        self.alg = alg
        self.assertion_audience = assertion_audience
        self.assertion_lifetime = assertion_lifetime

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        from ._jwt import SigningKey, sign_assertion

        secret = resolve_secret(self.secret)
        assertion = SensitiveText(sign_assertion(
            SigningKey(secret.encode("utf-8"), self.alg), client_id=client_id,
            audience=self.assertion_audience or token_url, lifetime=self.assertion_lifetime,
        ))
        parts = _assertion_parts(client_id, assertion)
        return ClientAuthParts(form=parts.form,
                               secrets=(*_secret_forms(client_id, secret), assertion))


def _assertion_parts(client_id: str, assertion: str) -> ClientAuthParts:
    from ._jwt import JWT_BEARER

    return ClientAuthParts(
        form=(
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ),
        secrets=(assertion,),
    )


class TLSClientAuth(Frozen):
    """``tls_client_auth`` (RFC 8705 §2.1): a PKI client certificate authenticates the client.

    Only ``client_id`` goes in the form; the certificate is presented in the TLS handshake
    (the token Session's ``cert`` or the ``cert=`` shortcut).
    """

    name: ClassVar[str] = "tls_client_auth"
    __slots__ = ()

    def authenticate(self, client_id: str, token_url: str) -> ClientAuthParts:
        return ClientAuthParts(form=(("client_id", client_id),))


class SelfSignedTLSClientAuth(TLSClientAuth):
    """``self_signed_tls_client_auth`` (RFC 8705 §2.2): a registered self-signed certificate."""

    name: ClassVar[str] = "self_signed_tls_client_auth"
    __slots__ = ()


class ClientCredentials(Frozen):
    """What the client may prove itself with; the auth method is chosen to fit.

    ``secret``: a client secret (or a callable returning it). ``key``: a
    :class:`~requests_oauthcc.private_keys.PrivateKey`. ``assertion``: a client assertion's
    source (``client_assertion=``). ``has_cert``: whether a client certificate is available
    to the token requests.
    """

    __slots__ = _fields = ("secret", "key", "assertion", "signing_alg", "assertion_audience",
                           "has_cert")
    _shown = ("signing_alg", "assertion_audience", "has_cert")
    secret: Final[SecretSource | None]
    key: Final[PrivateKey | None]
    assertion: Final[Callable[[], str] | None]
    signing_alg: Final[str | None]
    assertion_audience: Final[str | None]
    has_cert: Final[bool]

    def __init__(
        self, *, secret: SecretSource | None = None, key: PrivateKey | None = None,
        assertion: Callable[[], str] | None = None, signing_alg: str | None = None,
        assertion_audience: str | None = None, has_cert: bool = False,
    ) -> None:
        self.secret = secret
        self.key = key
        self.assertion = assertion
        self.signing_alg = signing_alg
        self.assertion_audience = assertion_audience
        self.has_cert = has_cert


def default_auth_method(credentials: ClientCredentials) -> str:
    """The method for ``auth_method=None``: key or assertion, then secret, then certificate."""
    if credentials.key is not None or credentials.assertion is not None:
        return "private_key_jwt"
    if credentials.secret is not None or not credentials.has_cert:
        return "client_secret_basic"
    return "tls_client_auth"


AUTH_METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
)


def make_client_auth(
    auth_method: str, credentials: ClientCredentials, *, client_id_in_body: bool = False
) -> ClientAuthMethod:
    """The method named ``auth_method`` (RFC 7591 registry name), set up with ``credentials``.

    ``client_id_in_body`` applies to ``client_secret_basic`` (every other method sends
    ``client_id`` in the form already).
    """
    if auth_method == "none":
        raise ConfigurationError(
            "auth_method='none' is not allowed: the client credentials grant needs an "
            "authenticated (confidential) client"
        )
    if auth_method not in AUTH_METHODS:
        raise ConfigurationError(
            f"unknown auth_method {auth_method!r}; use one of: {', '.join(AUTH_METHODS)}"
        )
    if auth_method == "private_key_jwt" or credentials.assertion is not None:
        return _private_key_jwt(auth_method, credentials)
    if auth_method in ("tls_client_auth", "self_signed_tls_client_auth"):
        if not credentials.has_cert:
            raise ConfigurationError(
                f"auth_method={auth_method!r} needs a client certificate: pass cert=, or a "
                "session= whose cert is set"
            )
        return TLSClientAuth() if auth_method == "tls_client_auth" else SelfSignedTLSClientAuth()
    secret = credentials.secret
    if secret is None:
        raise ConfigurationError(f"auth_method={auth_method!r} needs a client_secret")
    secret = hold_secret(secret)
    if not (callable(secret) or (isinstance(secret, Secret) and secret.reveal())):
        raise ConfigurationError(
            "client_secret must be a non-empty str or a zero-argument callable returning one"
        )
    if isinstance(secret, Secret):
        check_text("client_secret", secret.reveal())
    if auth_method == "client_secret_jwt":
        return _client_secret_jwt(secret, credentials)
    if auth_method == "client_secret_post":
        return ClientSecretPost(secret)
    return ClientSecretBasic(secret, client_id_in_body)


def _client_secret_jwt(secret: SecretSource, credentials: ClientCredentials) -> ClientSecretJWT:
    """``client_secret_jwt`` with the HMAC algorithm asked for (HS256 by default)."""
    from ._jwt import HMAC_ALGS, require_pyjwt

    require_pyjwt()
    alg = credentials.signing_alg or "HS256"
    if alg not in HMAC_ALGS:
        raise ConfigurationError(
            f"signing_alg {alg!r} does not fit client_secret_jwt; use one of: "
            f"{', '.join(HMAC_ALGS)}"
        )
    if isinstance(secret, Secret) and len(secret.reveal().encode()) * 8 < int(alg[2:]):
        logger.warning(
            "client_secret_jwt with a secret shorter than %s bits: RFC 7518 §3.2 asks for "
            "an HMAC key at least as long as the hash; ask the server for a longer secret",
            alg[2:],
        )
    return ClientSecretJWT(secret, alg, credentials.assertion_audience)


def _private_key_jwt(
    auth_method: str, credentials: ClientCredentials
) -> PrivateKeyJWT | ClientAssertion:
    """``private_key_jwt``: an assertion signed with ``private_key=``, or one made elsewhere
    (``client_assertion=``), which is sent with no other method."""
    if auth_method != "private_key_jwt":
        raise ConfigurationError(
            "client_assertion= is sent as a JWT client assertion, which is "
            f"auth_method='private_key_jwt', not {auth_method!r}")
    if credentials.assertion is not None:
        return ClientAssertion(credentials.assertion)
    if credentials.key is None:
        raise ConfigurationError(
            "auth_method='private_key_jwt' needs private_key= or client_assertion=")
    return PrivateKeyJWT(credentials.key, credentials.assertion_audience)
