"""A threaded HTTP server on 127.0.0.1 and a free port, started and stopped by ``with``: the
lifecycle shared by the tests' hand-written servers (quirky.py, interop/dpop_resource.py)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TypeVar

_S = TypeVar("_S", bound="LoopbackServer")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many threads connect at once in the tests


class LoopbackServer:
    """Serves ``handler`` from ``with`` to its end; ``base_url`` is ``http://127.0.0.1:port``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self: _S) -> _S:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
