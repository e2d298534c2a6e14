"""A loopback HTTP server that answers with raw bytes, on a schedule: for misbehaving servers.

``RawServer(answer)`` reads each request (head and ``Content-Length`` body), records it,
then sends the pieces ``answer(request)`` returns, each after its delay, and closes the
connection. Trickling servers, redirects and malformed answers are a few lines each::

    with RawServer(lambda request: trickle_headers(0.2)) as server:
        requests.get(server.url("/token"), timeout=1)  # each read succeeds, slowly
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

Script = Iterable[tuple[float, bytes]]
"""Pieces of an answer: ``(seconds to wait first, bytes to send)``."""


@dataclass(frozen=True)
class RawRequest:
    """One request as received: method, path, headers (names lower-cased), body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class RawServer:
    """See the module docstring. ``context``: a server-side TLS context, for https."""

    def __init__(
        self,
        answer: Callable[[RawRequest], Script],
        *,
        host: str = "127.0.0.1",
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        self.requests: list[RawRequest] = []
        self._host = host
        self._context = context
        self._stop = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="raw-server", daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    @property
    def base_url(self) -> str:
        return f"{'https' if self._context else 'http'}://{self._host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the 50 ms poll, or the listener closed
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            if self._context is not None:
                conn = self._context.wrap_socket(conn, server_side=True)
            request = _read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            for delay, data in self.answer(request):
                if delay and self._stop.wait(delay):
                    return
                conn.sendall(data)
        except (OSError, ValueError):  # the client gave up: part of the tests
            pass
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> RawRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawRequest(method, path, headers, body)


def raw_response(
    status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
    *, content_length: bool = True,
) -> bytes:
    """A whole HTTP/1.1 answer as bytes (``Content-Length`` added unless told not to)."""
    lines = [f"HTTP/1.1 {status} Whatever"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


TOKEN_BODY = b'{"access_token": "slowly-sent-token", "token_type": "Bearer"}'


def trickle_headers(interval: float, padding: int = 30, body: bytes = TOKEN_BODY) -> Script:
    """The status line at once, then a header one byte every ``interval`` seconds."""
    yield 0, b"HTTP/1.1 200 OK\r\n"
    for byte in b"X-Slow: " + b"a" * padding + b"\r\n":
        yield interval, bytes([byte])
    yield 0, (
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def trickle_body(interval: float, body: bytes = TOKEN_BODY) -> Script:
    """The head at once, then the body one byte every ``interval`` seconds."""
    yield 0, (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    for byte in body:
        yield interval, bytes([byte])
