"""Client assertions from the platform the client runs on, for
``ClientCredentialsAuth(client_assertion=...)`` (RFC 7521 §4.2, RFC 7523 §2.2).

A platform that vouches for a workload issues it a short-lived JWT; the token endpoint
takes that JWT in place of a client secret. Each source here says where the JWT is, and
checks it once, so that a pod or job that is not set up fails when the auth is built,
with a message saying what to set up, not at the first token request::

    ClientCredentialsAuth(url, "my-client", client_assertion=kubernetes_token())
    ClientCredentialsAuth(**entra_workload_identity(), scope="api://my-api/.default")
    ClientCredentialsAuth(url, "my-client", client_assertion=GitHubActionsOIDC("my-api"))

A file is read again at each token request (the platform rotates it); the GitHub Actions
token is fetched over HTTP and cached until shortly before it expires
(:class:`GitHubActionsOIDC`). No message, log record or ``repr`` shows a JWT or the
GitHub request token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TypedDict

from ._github_oidc import GitHubActionsOIDC
from ._options import check_url
from .errors import ConfigurationError
from .form import check_text
from .sources import AssertionFile

__all__ = [
    "KUBERNETES_TOKEN_PATH",
    "GitHubActionsOIDC",
    "WorkloadIdentity",
    "entra_workload_identity",
    "kubernetes_token",
]

KUBERNETES_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""Where Kubernetes mounts a pod's service account token by default."""

_PROJECTED_HINT = (
    "give the path of the token of a serviceAccountToken projected volume: the volume's "
    "mountPath joined with its path (e.g. /var/run/secrets/tokens/oauth-token)"
)
_KUBERNETES_HINT = (
    "outside a Kubernetes pod, or with automountServiceAccountToken: false, there is no "
    "default token. Its audience is the Kubernetes API server anyway: for an authorization "
    "server, mount a serviceAccountToken projected volume with the audience it expects (and "
    "an expirationSeconds) and pass the path of its token"
)


def _check_token_file(path: object, where: str, hint: str) -> AssertionFile:
    """An :class:`~requests_oauthcc.sources.AssertionFile` of ``path``, once the file
    there holds a usable assertion now (the one rule of
    :func:`~requests_oauthcc.sources.assertion_source`). Raises :class:`ConfigurationError`
    naming ``where`` and the problem (the path only when something exists there), then
    ``hint``."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigurationError(f"{where} must be a path (str or os.PathLike); "
                                 f"got {type(path).__name__}")
    source = AssertionFile(path)
    try:
        source.check()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}; {hint}") from None
    return source


def kubernetes_token(path: str | os.PathLike[str] = KUBERNETES_TOKEN_PATH) -> AssertionFile:
    """A Kubernetes service account token file, for ``client_assertion=``.

    ``path``: the default token (:data:`KUBERNETES_TOKEN_PATH`), or the token of a
    ``serviceAccountToken`` projected volume, whose audience and lifetime the pod spec
    chooses (what an authorization server other than the API server needs). The kubelet
    rewrites the file before the token expires; the auth reads it at each token request.

    Raises :class:`ConfigurationError` when the file cannot give an assertion now: it does
    not exist, is not a regular file, is larger than 64 KiB, is empty or is not a JWT. The
    message names the path only when something exists there (a value given by mistake may
    be the token).
    """
    default = isinstance(path, (str, os.PathLike)) and os.fspath(path) == KUBERNETES_TOKEN_PATH
    where = "the service account token file" + (f" {KUBERNETES_TOKEN_PATH!r}" if default else "")
    return _check_token_file(path, where, _KUBERNETES_HINT if default else _PROJECTED_HINT)


class WorkloadIdentity(TypedDict):
    """What :func:`entra_workload_identity` gives: ``ClientCredentialsAuth`` keywords."""

    token_url: str
    """``<authority>/<tenant>/oauth2/v2.0/token``, the Microsoft identity platform v2.0
    token endpoint of the tenant."""
    client_id: str
    """The application (client) id of the app registration or user-assigned managed
    identity that trusts the pod's service account (a federated identity credential)."""
    client_assertion: AssertionFile
    """The projected service account token file the webhook mounts."""


_DEFAULT_AUTHORITY = "https://login.microsoftonline.com/"
_ENTRA_VARIABLES = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")
_ENTRA_HINT = (
    "the Azure workload identity webhook sets AZURE_CLIENT_ID, AZURE_TENANT_ID, "
    "AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST in pods labelled "
    "azure.workload.identity/use: \"true\" whose service account is annotated "
    "azure.workload.identity/client-id"
)
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TENANT = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
"""A tenant: a GUID, a domain name (``contoso.onmicrosoft.com``) or a name such as
``organizations``: letters, digits, ``-`` and single dots, as azure-identity allows."""


def entra_workload_identity(environ: Mapping[str, str] | None = None) -> WorkloadIdentity:
    """Microsoft Entra ID workload identity (AKS): ``ClientCredentialsAuth`` keywords from
    the environment the webhook sets::

        ClientCredentialsAuth(**entra_workload_identity(), scope="api://my-api/.default")

    ``environ``: the environment to read (default :data:`os.environ`). Reads what
    azure-identity's ``WorkloadIdentityCredential`` reads: ``AZURE_CLIENT_ID``,
    ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE`` and ``AZURE_AUTHORITY_HOST``
    (default ``https://login.microsoftonline.com/``; a host without a scheme gets
    ``https://``, as azure-identity does). The token URL is the tenant's v2.0 endpoint
    (``<authority>/<tenant>/oauth2/v2.0/token``), whose token requests take the file's
    token as a ``jwt-bearer`` client assertion (Microsoft identity platform, "client
    credentials flow with a federated credential").

    Raises :class:`ConfigurationError`: a variable missing or blank (all of them are
    named); a tenant that is not a GUID or a domain-like name (no ``/``, ``?``, ``#``,
    ``@``, ``..`` or spaces can reach the URL path); an authority that is not an http(s)
    URL with a host and without user info, query or fragment (``ClientCredentialsAuth``
    then applies its https rule); a token file that cannot be read now.
    """
    env = os.environ if environ is None else environ
    values = {name: (env.get(name) or "").strip() for name in _ENTRA_VARIABLES}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set (or "
            f"blank): Entra ID workload identity needs all of {', '.join(_ENTRA_VARIABLES)}; "
            f"{_ENTRA_HINT}"
        )
    client_id = check_text("AZURE_CLIENT_ID", values["AZURE_CLIENT_ID"])
    tenant = values["AZURE_TENANT_ID"]
    if len(tenant) > 253 or not _TENANT.fullmatch(tenant):
        raise ConfigurationError(
            "AZURE_TENANT_ID is not a tenant id: give the directory (tenant) GUID or a "
            "domain name such as contoso.onmicrosoft.com (letters, digits, '-' and single "
            "dots only)"
        )
    authority = _authority((env.get("AZURE_AUTHORITY_HOST") or "").strip() or
                           _DEFAULT_AUTHORITY)
    assertion = _check_token_file(
        values["AZURE_FEDERATED_TOKEN_FILE"], "AZURE_FEDERATED_TOKEN_FILE",
        f"the webhook mounts the pod's token there; {_ENTRA_HINT}",
    )
    return WorkloadIdentity(token_url=f"{authority}/{tenant}/oauth2/v2.0/token",
                            client_id=client_id, client_assertion=assertion)


def _authority(value: str) -> str:
    """``AZURE_AUTHORITY_HOST`` checked, without trailing slashes."""
    if "://" not in value:
        value = "https://" + value  # as azure-identity's normalize_authority
    check_url("AZURE_AUTHORITY_HOST", value)  # http(s), a host, no user info
    if "?" in value or "#" in value or not value.isprintable() or " " in value:
        raise ConfigurationError(
            f"AZURE_AUTHORITY_HOST {value!r} holds a query, a fragment, spaces or control "
            f"characters; give the Entra ID authority, such as {_DEFAULT_AUTHORITY}"
        )
    return value.rstrip("/")
