"""URL facts the transport-security rule needs: loopback hosts, proxies and origins.

:func:`sends_in_clear` is the one transport-security rule: token requests, metadata
requests and API requests all ask it, so that a second copy of the rule cannot drift.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

from requests.utils import get_environ_proxies, select_proxy
from urllib3.util import parse_url

if TYPE_CHECKING:
    import requests

__all__ = [
    "clear_text_reason",
    "is_loopback_host",
    "origin",
    "prepared_origin",
    "proxy_environment",
    "proxy_for",
    "sends_in_clear",
    "target_uri",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}

_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is exactly ``localhost``, an address in 127.0.0.0/8, or ``::1``.

    Names under ``.localhost`` (and ``localhost.``) are not: many resolvers send them to
    DNS, whose answer need not be a loopback address.
    """
    if not host:
        return False
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(url: str, session: requests.Session | None = None) -> str | None:
    """The proxy requests would send a request for ``url`` through, or ``None`` (direct).

    Computed with requests' own code, as ``session.get(url)`` (no ``proxies=`` argument)
    does: the Session's ``merge_environment_settings`` (environment proxies and
    ``NO_PROXY`` when ``trust_env`` is set, then the Session's ``proxies``), then
    ``select_proxy``. With ``session=None``, the environment alone, as a Session with
    ``trust_env=True`` and no ``proxies`` of its own sees it.
    """
    if session is None:
        proxies = get_environ_proxies(url)
    else:
        proxies = dict(session.merge_environment_settings(url, {}, None, None, None)["proxies"])
    return select_proxy(url, proxies) or None


def sends_in_clear(url: str, session: requests.Session | None = None) -> bool:
    """Whether a request to ``url`` would cross a network unencrypted.

    The one transport-security rule for token requests, metadata requests and API
    requests. ``https`` never sends in clear (through a proxy, TLS is tunnelled end to
    end). Plain ``http`` does, except to ``localhost``, 127.0.0.0/8 or ``::1`` when requests
    would connect directly: any proxy (http, https or SOCKS) for an http URL reads the
    request, secret and token included.

    ``session``: the Session the request is sent with (its ``proxies`` and ``trust_env``
    decide whether a proxy is used), or ``None`` when unknown (environment proxies only,
    see :func:`proxy_for`). A ``proxies=`` argument given per request is not seen.
    """
    parsed = parse_url(url)
    if (parsed.scheme or "").lower() == "https":
        return False
    return not is_loopback_host(parsed.host) or proxy_for(url, session) is not None


def clear_text_reason(url: str) -> str:
    """Why :func:`sends_in_clear` is true for ``url``, for error messages (no proxy URL,
    which may hold the proxy's password)."""
    host = parse_url(url).host
    if is_loopback_host(host):
        return ("it is plain http, and requests would send it through a proxy (the "
                "environment's http_proxy/all_proxy or the Session's proxies), which reads "
                f"it; exempt the host (NO_PROXY={(host or '').strip('[]')}), or use https")
    return "it is plain http to a host that is not localhost, 127.0.0.0/8 or ::1; use https"


def proxy_environment() -> tuple[object, ...]:
    """What :func:`proxy_for` with no Session depends on, cheaply: a key for remembering it.

    The values of the proxy variables requests reads for an http URL, and the number of
    environment variables (so that a new variable in any spelling, e.g. ``Http_Proxy``,
    changes the key). Proxy settings of the operating system (macOS, Windows), read by
    the standard library when the environment names no proxy, are not part of it.
    """
    environ = os.environ
    return (len(environ), *map(environ.get, _PROXY_VARIABLES))


def target_uri(url: str) -> str:
    """``url`` without query, fragment and user info: the target URI (RFC 9110 §7.1) as a
    DPoP proof's ``htu`` names it (RFC 9449 §4.2), and as logs show a request (a query
    or user info may hold credentials). Plain string work: it runs for every proof."""
    return _without_user_info(url.partition("#")[0].partition("?")[0])


def prepared_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL as requests prepares it, lower-cased, without user
    info; unlike :func:`origin`, no parsing and no default port: cheap for every request."""
    start = url.find("//") + 2
    end = url.find("/", start)
    return _without_user_info(url if end < 0 else url[:end]).lower()


def _without_user_info(url: str) -> str:
    start = url.find("//") + 2
    end = url.find("/", start)
    at = url.rfind("@", start, len(url) if end < 0 else end)
    return url if at < 0 else url[:start] + url[at + 1:]


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, lower-cased, with the default port made explicit."""
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").lower()
    port = parsed.port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}:{port}"
