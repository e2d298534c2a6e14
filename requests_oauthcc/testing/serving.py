"""The lifecycle and HTTP plumbing every loopback server of the kit shares: a threaded
server on 127.0.0.1 and a free port, started by ``with`` (or ``start()``), stopped at its
end (or ``stop()``); handlers that speak HTTP/1.1, log nothing and answer JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["JsonHandler", "LoopbackService", "QuietServer"]

_S = TypeVar("_S", bound="LoopbackService")

_POLL_INTERVAL = 0.01
"""Seconds between the serving loop's looks at a stop request: ``stop()`` waits about that
long (a test suite stops servers by the thousand; an idle server costs under 1% of a core)."""


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many threads connect at once in the tests

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (timeouts, refused bodies) are part of the tests."""


class JsonHandler(BaseHTTPRequestHandler):
    """Reading bodies and sending (JSON) answers; subclasses route."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        hdrs = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        hdrs.update(headers or {})
        self._send(status, json.dumps(payload).encode(), hdrs)


class LoopbackService:
    """A server on ``host`` (127.0.0.1) and a free port, serving in a daemon thread.

    Subclasses give :meth:`_handler_class` (a handler bound to them) and may wrap the
    listening socket in :meth:`_wrap_socket` (TLS) and say so in :meth:`_scheme`.
    """

    _thread_name = "loopback-server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._httpd: QuietServer | None = None
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _wrap_socket(self, httpd: QuietServer) -> None:
        """Hook: wrap ``httpd.socket`` (in TLS) before serving starts."""

    def _scheme(self) -> str:
        return "http"

    def start(self: _S) -> _S:
        """Start serving on a free port; returns self."""
        httpd = QuietServer((self._host, 0), self._handler_class())
        self._wrap_socket(httpd)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": _POLL_INTERVAL},
            name=self._thread_name, daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{self._scheme()}://{self._host}:{self.port}"
