"""A raw-socket HTTP/1.1 server on 127.0.0.1 that answers each request with a script step.

For what OAuthTestServer cannot do: bodies that never end or are huge, and a record of
the exact bytes and the connection each request came on.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_ZEROS = bytes(1 << 20)


@dataclass(frozen=True)
class Received:
    """One request: the connection it came on (0, 1, ...), its head lines and body."""

    connection: int
    head: list[str]
    body: bytes

    def header(self, name: str) -> str | None:
        prefix = name.lower() + ":"
        return next((line.split(":", 1)[1].strip() for line in self.head[1:]
                     if line.lower().startswith(prefix)), None)


Step = Callable[[socket.socket, Received], bool]
"""Writes the answer to one request; returns whether the connection stays open."""


def answer(status: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Step:
    """A complete answer with a Content-Length; the connection stays open."""

    def step(conn: socket.socket, request: Received) -> bool:
        head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return True

    return step


def endless_chunked(status: str = "401 Unauthorized", seconds: float = 10.0) -> Step:
    """A chunked body that goes on until the client hangs up (or ``seconds`` pass)."""

    def step(conn: socket.socket, request: Received) -> bool:
        conn.sendall(f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n"
                     "WWW-Authenticate: Bearer\r\n\r\n".encode())
        chunk = b"%x\r\n" % len(_ZEROS) + _ZEROS + b"\r\n"
        stop = time.monotonic() + seconds
        try:
            while time.monotonic() < stop:
                conn.sendall(chunk)
        except OSError:
            pass
        return False

    return step


def huge_body(size: int, status: str = "401 Unauthorized", seconds: float = 10.0) -> Step:
    """A body of ``size`` bytes, declared in Content-Length, sent as fast as it is read."""

    def step(conn: socket.socket, request: Received) -> bool:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {size}\r\n"
                     "WWW-Authenticate: Bearer\r\n\r\n".encode())
        sent = 0
        stop = time.monotonic() + seconds
        try:
            while sent < size and time.monotonic() < stop:
                piece = memoryview(_ZEROS)[: min(len(_ZEROS), size - sent)]
                conn.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        return False

    return step


class RawServer:
    """Serves ``script`` (one step per request, in arrival order), then answers 500."""

    def __init__(self, script: list[Step]) -> None:
        self._script = list(script)
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.connections = 0
        self.hangups = 0  # connections the client closed
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index = self.connections
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(30)
        with conn:
            data = b""
            while True:
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            with self._lock:
                                self.hangups += 1
                            return
                        data += chunk
                    head, _, data = data.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    request = Received(index, lines, b"")
                    length = int(request.header("Content-Length") or 0)
                    while len(data) < length:
                        data += conn.recv(65536)
                    request = Received(index, lines, data[:length])
                    data = data[length:]
                except OSError:
                    return
                with self._lock:
                    self.received.append(request)
                    step = self._script.pop(0) if self._script else answer("500 Script Over")
                if not step(conn, request):
                    return
