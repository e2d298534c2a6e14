"""Which requests may carry the token: those to an allowed origin, and never in the clear.

:class:`Destinations` judges a URL once per ``scheme://authority`` (parsing it costs more
than the rest of the per-request path) with :func:`~requests_oauthcc._urls.sends_in_clear`,
the one transport-security rule. :class:`ProxyGuard` is the adapter of
``ClientCredentialsAuth.make_session()``: it sees the proxies requests resolved for each
request, which an auth object cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.utils import select_proxy

from ._urls import clear_text_reason, origin, proxy_environment, sends_in_clear
from .errors import InsecureTransportError

__all__ = ["Destinations", "ProxyGuard"]

_Verdict = tuple[tuple[object, ...] | None, bool | None]


class Destinations:
    """Where one auth object's token may go.

    ``allowed_origins``: ``scheme://host:port`` strings (checked), or ``None`` for any.
    ``allow_http``: ``insecure_allow_http``; plain http anywhere, proxies included.
    """

    def __init__(self, allowed_origins: frozenset[str] | None, allow_http: bool) -> None:
        self._allowed_origins = allowed_origins
        self._allow_http = allow_http
        self._verdicts: dict[str, _Verdict] = {}

    def may_attach(self, url: str) -> bool:
        """Whether the token may go to ``url``: an allowed origin, and not in the clear.

        Raises :class:`InsecureTransportError` where :func:`sends_in_clear` (with the
        environment's proxies) holds. The verdict is remembered per ``scheme://authority``
        prefix (parsing costs more than the rest of the per-request path); for plain http
        it is remembered with the proxy variables it was judged under
        (:func:`proxy_environment`), so that setting ``http_proxy`` later takes effect.
        """
        end = url.find("/", url.find("//") + 2)
        prefix = url if end < 0 else url[:end]
        environment = (
            None if self._allow_http or url.startswith("https://") else proxy_environment()
        )
        known = self._verdicts.get(prefix)
        if known is None or known[0] != environment:
            known = (environment, self._judge(prefix))
            if len(self._verdicts) >= 64:
                self._verdicts.clear()
            self._verdicts[prefix] = known
        verdict = known[1]
        if verdict is None:
            raise InsecureTransportError(
                f"refusing to send a bearer token to {origin(url)}: {clear_text_reason(url)} "
                "(or insecure_allow_http=True, for test rigs only)"
            )
        return verdict

    def _judge(self, prefix: str) -> bool | None:
        """True: attach; False: not an allowed origin; None: it would be sent in clear."""
        if self._allowed_origins is not None and origin(prefix) not in self._allowed_origins:
            return False
        if not self._allow_http and sends_in_clear(prefix):
            return None
        return True

    def check_proxies(self, url: str, proxies: Mapping[str, str] | None) -> None:
        """Raise :class:`InsecureTransportError` if ``url`` is plain http and ``proxies``
        (as requests resolved them for this request) send it through a proxy."""
        if self._allow_http or not proxies or url.lower().startswith("https:"):
            return
        if select_proxy(url, dict(proxies)):
            raise InsecureTransportError(
                f"refusing to send a bearer token to {origin(url)}: it is plain http, and this "
                "Session sends it through a proxy, which reads it; exempt the host with "
                "NO_PROXY, or use https (or insecure_allow_http=True, for test rigs only)"
            )


class ProxyGuard(requests.adapters.HTTPAdapter):
    """An ``http://`` adapter that calls ``check(request, proxies)`` before each send.

    ``check`` raises for a request that carries the auth's token through a proxy.
    """

    __attrs__ = [*requests.adapters.HTTPAdapter.__attrs__, "check"]  # noqa: RUF012 - requests' own

    def __init__(
        self, check: Callable[[requests.PreparedRequest, Mapping[str, str] | None], None]
    ) -> None:
        super().__init__()
        self.check = check

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        proxies = kwargs["proxies"] if "proxies" in kwargs else (
            args[4] if len(args) > 4 else None)
        self.check(request, proxies)
        return super().send(request, *args, **kwargs)
