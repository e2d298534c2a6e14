"""A plain forward HTTP proxy on 127.0.0.1 that records every request it is handed.

Clients send it ``GET http://host:port/path HTTP/1.1``; it keeps the request (head and
body, as bytes) in ``received``, forwards it to ``host:port`` and relays the answer, one
request per connection. It shows what a proxy between the client and a loopback server
reads: with plain http, everything, Authorization headers and form bodies included.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from urllib.parse import urlsplit


class ForwardProxy:
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._forward(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def seen(self) -> bytes:
        """Everything received so far, joined."""
        with self._lock:
            return b"\n".join(self.received)

    def _forward(self, client: socket.socket) -> None:
        client.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return
            data += chunk
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
