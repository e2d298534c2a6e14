"""URL facts the transport-security rules need: loopback hosts and origins."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from urllib3.util import parse_url

if TYPE_CHECKING:
    import requests

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is ``localhost`` or an address in 127.0.0.0/8 or ``::1``."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_plain_http_to_remote(url: str) -> bool:
    """Whether ``url`` is not https and does not point at a loopback host."""
    parsed = parse_url(url)
    return (parsed.scheme or "").lower() != "https" and not is_loopback_host(parsed.host)


def sends_in_clear(url: str, session: requests.Session | None = None) -> bool:
    """Whether a request to ``url`` would cross the network unencrypted.

    The one transport-security rule for token requests, metadata requests and API
    requests: true for plain http unless the request stays on this host.
    ``session``: the Session the request is sent with (its ``proxies`` and ``trust_env``
    decide whether a proxy is used), or ``None`` when unknown (environment proxies only).
    """
    return is_plain_http_to_remote(url)


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, lower-cased, with the default port made explicit."""
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").lower()
    port = parsed.port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}:{port}"
