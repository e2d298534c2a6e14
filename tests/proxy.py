"""Proxies on 127.0.0.1 for the tests, each handling one client connection at a time.

- :class:`ConnectProxy` sends every CONNECT tunnel to one local server, whatever host was
  asked: with HTTPS_PROXY pointing at it and a certificate valid for the example hosts, code
  that calls https://auth.example.com/... really reaches the local server over TLS.
- :class:`ForwardProxy` is a plain forward HTTP proxy: clients send it
  ``GET http://host:port/path HTTP/1.1``; it keeps the request (head and body, as bytes) in
  ``received``, forwards it to ``host:port`` and relays the answer, one request per
  connection. It shows what a proxy between the client and a loopback server reads: with
  plain http, everything, Authorization headers and form bodies included.
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import threading
from typing import TypeVar
from urllib.parse import urlsplit

_P = TypeVar("_P", bound="LoopbackProxy")


class LoopbackProxy:
    """A threaded TCP server on a free port of 127.0.0.1; ``handle(client)`` serves one
    connection. ``url`` is what HTTP(S)_PROXY takes; a context manager, or ``stop()``."""

    def __init__(self) -> None:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy.handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                         daemon=True).start()

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    @staticmethod
    def read_head(client: socket.socket) -> bytes | None:
        """What the client sent up to the end of its head (maybe more); ``None`` if it hung
        up first."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return None
            data += chunk
        return data


class ConnectProxy(LoopbackProxy):
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hosts: list[str] = []
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        head = self.read_head(client)
        if head is None:
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.hosts.append(target.rsplit(":", 1)[0])
        with socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            selector = selectors.DefaultSelector()
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select(timeout=30):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)


class ForwardProxy(LoopbackProxy):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def seen(self) -> bytes:
        """Everything received so far, joined."""
        with self._lock:
            return b"\n".join(self.received)

    def handle(self, client: socket.socket) -> None:
        client.settimeout(10)
        data = self.read_head(client)
        if data is None:
            return
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            body += chunk
        with self._lock:
            self.received.append(head + b"\r\n\r\n" + body)
        method, target, version = lines[0].split(b" ", 2)
        parts = urlsplit(target.decode())
        if parts.scheme != "http" or not parts.hostname:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
            return
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [line for line in lines[1:]
                   if not line.lower().startswith((b"connection:", b"proxy-"))]
        upstream_head = b"\r\n".join(
            [b" ".join([method, path.encode(), version]), *headers, b"Connection: close"])
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as up:
            up.sendall(upstream_head + b"\r\n\r\n" + body)
            answer = b""
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                answer += chunk
        status, _, rest = answer.partition(b"\r\n")
        client.sendall(status + b"\r\nConnection: close\r\n" + rest)
