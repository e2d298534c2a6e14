"""The next hop of a redirect, decided by requests' own rules.

requests follows a redirect with a copy of the request it sent (``resolve_redirects``),
without calling the auth again. What the auth must do for that hop (a DPoP proof for
exactly its method and URL, or no token where it may not go) depends on the method and URL
requests will use and on whether it keeps ``Authorization``: :func:`next_hop` works them
out with requests' very steps, so that they cannot differ.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urljoin, urlparse

import requests
from requests.sessions import SessionRedirectMixin
from requests.utils import requote_uri
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ._frozen import Frozen

__all__ = ["Hop", "next_hop"]

_REDIRECTS = SessionRedirectMixin()
"""requests' own redirect rules: target, method, stripping ``Authorization``."""


class Hop(Frozen):
    """The request requests sends next: ``method``, ``url`` (as urllib3 encodes it on the
    wire) and whether it keeps the ``Authorization`` header."""

    __slots__ = _fields = _shown = ("method", "url", "keeps_authorization")
    method: Final[str]
    url: Final[str]
    keeps_authorization: Final[bool]

    def __init__(self, method: str, url: str, keeps_authorization: bool) -> None:
        self.method = method
        self.url = url
        self.keeps_authorization = keeps_authorization


def next_hop(response: requests.Response, request: requests.PreparedRequest) -> Hop | None:
    """The hop that redirect ``response`` (to ``request``) leads to, or ``None``."""
    target = _REDIRECTS.get_redirect_target(response)
    if target is None:
        return None
    if target.startswith("//"):  # resolve_redirects, step by step
        target = f"{urlparse(response.url).scheme}:{target}"
    parsed = urlparse(target)
    url = parsed.geturl()
    url = urljoin(response.url, requote_uri(url)) if not parsed.netloc else requote_uri(url)
    hop = request.copy()
    hop.url = url
    _REDIRECTS.rebuild_method(hop, response)
    keeps = not _REDIRECTS.should_strip_auth(  # type: ignore[no-untyped-call]
        response.request.url or "", url)
    try:
        wire = parse_url(url).url  # what urllib3 sends: invalid characters percent-encoded
    except LocationParseError:
        wire = url
    return Hop(hop.method or "GET", wire, keeps)
