"""How RFC 9449 §4.3 compares a proof's ``htu`` with the request's URI: query and fragment
ignored, then RFC 3986 syntax-based (§6.2.2) and scheme-based (§6.2.3) normalization."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["normalize_htu", "same_target"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for the path of an absolute URL."""
    segments = path.split("/")
    output: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
            continue
        if last:
            output.append("")
    return "/".join(output)


def _normalize_percent(text: str) -> str:
    """RFC 3986 §6.2.2.1 and §6.2.2.2: upper-case escapes, unreserved ones decoded."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return re.sub(r"%([0-9A-Fa-f]{2})", fix, text)


def normalize_htu(url: str) -> str:
    """A URL as RFC 9449 §4.3 compares ``htu``: query and fragment dropped, then RFC 3986
    syntax-based (§6.2.2) and scheme-based (§6.2.3) normalization. Raises ValueError for
    what is not an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.hostname is None:
        raise ValueError("not an absolute http(s) URL")
    host = _normalize_percent(parts.hostname).lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError when out of range
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{_normalize_percent(userinfo)}@{netloc}"
    path = _remove_dot_segments(_normalize_percent(parts.path)) or "/"
    return f"{scheme}://{netloc}{path}"


def same_target(htu: str, url: str) -> bool:
    try:
        return normalize_htu(htu) == normalize_htu(url)
    except ValueError:  # an htu that is no URL, or a port out of range
        return False
