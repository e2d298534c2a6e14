"""A loopback HTTP server that answers with raw bytes, on a schedule: for misbehaving servers.

``RawServer(answer)`` reads each request (head and ``Content-Length`` body), records it
with the number of the connection it came on, then sends the pieces ``answer(request)``
returns, each after its delay. It then closes the connection, or with ``keep_alive=True``
reads the next request on it (until the client hangs up or a script is cut short).
Trickling servers, redirects, endless bodies and malformed answers are a few lines each::

    with RawServer(lambda request: trickle_headers(0.2)) as server:
        requests.get(server.url("/token"), timeout=1)  # each read succeeds, slowly

    with RawServer(in_turn(endless_chunked(), [(0, raw_response(200))]),
                   keep_alive=True) as server:
        ...  # first request: a body that never ends; second: a 200; then 500s
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

Script = Iterable[tuple[float, bytes]]
"""Pieces of an answer: ``(seconds to wait first, bytes to send)``."""


@dataclass(frozen=True)
class RawRequest:
    """One request as received: method, path, headers (names lower-cased), exact body, and
    the connection it came on (0, 1, ... in accept order)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    connection: int = 0


class RawServer:
    """See the module docstring. ``context``: a server-side TLS context, for https.
    ``keep_alive``: serve further requests on a connection once an answer is sent whole
    (answers must then delimit their bodies). ``port``: 0 for a free one."""

    def __init__(
        self,
        answer: Callable[[RawRequest], Script],
        *,
        host: str = "127.0.0.1",
        context: ssl.SSLContext | None = None,
        keep_alive: bool = False,
        port: int = 0,
    ) -> None:
        self.answer = answer
        self.requests: list[RawRequest] = []
        self.keep_alive = keep_alive
        self._host = host
        self._context = context
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.01)
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
        scheme = "https" if self._context else "http"
        default = {"http": 80, "https": 443}[scheme] == self.port
        return f"{scheme}://{self._host}" + ("" if default else f":{self.port}")

    def url(self, path: str) -> str:
        return self.base_url + path

    def _accept(self) -> None:
        number = 0
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the 10 ms poll, or the listener closed
                continue
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()
            number += 1

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            conn.settimeout(5)
            if self._context is not None:
                conn = self._context.wrap_socket(conn, server_side=True)
            pending = b""
            while True:
                request, pending = _read_request(conn, pending, number)
                if request is None:
                    return
                with self._lock:  # recorded in the order the answers were chosen
                    self.requests.append(request)
                    script = self.answer(request)
                for delay, data in script:
                    if self._stop.wait(delay):  # the server closed: stop endless answers
                        return
                    conn.sendall(data)
                if not self.keep_alive:
                    return
        except (OSError, ValueError):  # the client gave up: part of the tests
            pass
        finally:
            conn.close()


def _read_request(
    conn: socket.socket, data: bytes, connection: int
) -> tuple[RawRequest | None, bytes]:
    """The next request on ``conn`` (``data``: bytes already read), and the bytes after it."""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, data = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(data) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    return RawRequest(method, path, headers, data[:length], connection), data[length:]


def in_turn(*scripts: Script) -> Callable[[RawRequest], Script]:
    """An ``answer`` giving each request the next script, in arrival order, then 500s."""
    remaining = list(scripts)

    def answer(request: RawRequest) -> Script:
        if remaining:
            return remaining.pop(0)
        return [(0, raw_response(500, b"script over"))]

    return answer


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


_MIB_OF_ZEROS = bytes(1 << 20)


def endless_chunked(status: int = 401, seconds: float = 10.0) -> Script:
    """A chunked Bearer challenge whose body goes on, 1 MiB chunks as fast as they are read,
    until the client hangs up, ``seconds`` pass or the server closes."""
    yield 0, (f"HTTP/1.1 {status} Whatever\r\nTransfer-Encoding: chunked\r\n"
              "WWW-Authenticate: Bearer\r\n\r\n").encode()
    chunk = b"%x\r\n" % len(_MIB_OF_ZEROS) + _MIB_OF_ZEROS + b"\r\n"
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        yield 0, chunk


def huge_body(size: int, status: int = 401, seconds: float = 10.0) -> Script:
    """A Bearer challenge with a body of ``size`` bytes, declared in Content-Length, sent as
    fast as it is read (until the client hangs up, ``seconds`` pass or the server closes)."""
    yield 0, (f"HTTP/1.1 {status} Whatever\r\nContent-Length: {size}\r\n"
              "WWW-Authenticate: Bearer\r\n\r\n").encode()
    stop = time.monotonic() + seconds
    sent = 0
    while sent < size and time.monotonic() < stop:
        piece = _MIB_OF_ZEROS if size - sent >= len(_MIB_OF_ZEROS) else bytes(size - sent)
        yield 0, piece
        sent += len(piece)


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
