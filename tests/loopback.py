"""A hand-written test server on 127.0.0.1 and a free port, started and stopped by ``with``
(quirky.py, interop/dpop_resource.py, test_platforms.py): the testing kit's own lifecycle,
:class:`~requests_oauthcc.testing.serving.LoopbackService`, serving a handler class."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from requests_oauthcc.testing.serving import LoopbackService


class LoopbackServer(LoopbackService):
    """Serves ``handler`` from ``with`` to its end; ``base_url`` is ``http://127.0.0.1:port``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__()
        self._handler = handler

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return self._handler
