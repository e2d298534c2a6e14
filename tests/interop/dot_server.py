"""django-oauth-toolkit as a real authorization server for the interop tests.

Run as ``python3 dot_server.py CONFIG.json``. The config (JSON) holds ``token_ttl``
(seconds), ``clients`` (a list of ``{"client_id", "client_secret"}``, all confidential
client-credentials applications; DOT lets each use client_secret_basic or
client_secret_post) and optionally ``directory`` (where the sqlite database goes; a
temporary directory otherwise). Once up, the server's stderr goes to
``dot_server.log`` there.

Django is configured in-process, the database migrated, the clients registered (DOT
hashes their secrets, as it does by default), then a threaded WSGI server listens on
127.0.0.1 on a free port and one JSON line ``{"base_url": ...}`` is printed on stdout.

Routes: DOT's own URLs under ``/o/`` (as people mount it), so ``/o/token/``,
``/o/revoke_token/`` and DOT's RFC 8414 metadata at
``/o/.well-known/oauth-authorization-server`` (issuer ``{base_url}/o``);
``/api/data``, protected by DOT's default ``ProtectedResourceView`` (a bad token gets
its bare 403), answering ``{"client_id": ..., "scope": ...}``; ``/_stats``, answering
``{"token_requests": N}``, every request that reached the token endpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

TOKEN_PATH = "/o/token/"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def configure(config: dict[str, Any], directory: Path) -> None:
    """Django settings for a DOT-only site: no project directory, sqlite in ``directory``."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        USE_TZ=True,
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                        "oauth2_provider"],
        MIDDLEWARE=[],
        DATABASES={"default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(directory / "dot.sqlite3"),
            # Threads write tokens concurrently: wait for the lock instead of failing, and
            # take it at the start of each transaction so no two deadlock upgrading it.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL;"},
        }},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        OAUTH2_PROVIDER={
            "ACCESS_TOKEN_EXPIRE_SECONDS": config["token_ttl"],
            "OIDC_ENABLED": False,
            "SCOPES": {"read": "Reading scope", "write": "Writing scope"},
        },
        # Errors only: Django logs every 4xx as a warning, a line per request.
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "ERROR"}},
            "root": {"handlers": ["stderr"], "level": "ERROR"},
        },
    )
    django.setup()


def _api_view() -> Callable[..., Any]:
    from django.http import HttpRequest, JsonResponse
    from oauth2_provider.views.generic import ProtectedResourceView

    class DataView(ProtectedResourceView):  # type: ignore[misc]  # DOT ships no types
        """DOT's default protection; the view only reports what the token was issued for."""

        def verify_request(self, request: HttpRequest) -> tuple[bool, Any]:
            valid, oauthlib_request = super().verify_request(request)
            if valid:
                self.access_token = oauthlib_request.access_token
            return valid, oauthlib_request

        def get(self, request: HttpRequest) -> JsonResponse:
            return JsonResponse({"client_id": self.access_token.application.client_id,
                                 "scope": self.access_token.scope})

    view: Callable[..., Any] = DataView.as_view()
    return view


def _urlpatterns() -> list[Any]:
    from django.urls import include, path

    return [path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
            path("api/data", _api_view())]


urlpatterns: list[Any] = []
"""This module is ``ROOT_URLCONF``; :func:`main` fills it once Django is set up."""


def register(clients: list[dict[str, str]]) -> None:
    from oauth2_provider.models import Application

    for client in clients:
        Application.objects.create(
            name=client["client_id"], client_id=client["client_id"],
            client_secret=client["client_secret"],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)


def with_stats(app: WSGIApp) -> WSGIApp:
    """``app`` plus ``/_stats``, counting the requests that reach the token endpoint."""
    lock = threading.Lock()
    count = 0

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        nonlocal count
        path = environ.get("PATH_INFO", "")
        if path == "/_stats":
            with lock:
                body = json.dumps({"token_requests": count}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if path == TOKEN_PATH:
            with lock:
                count += 1
        return app(environ, start_response)

    return wrapped


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> None:
    config: dict[str, Any] = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    signal.signal(signal.SIGTERM, _stop)
    with tempfile.TemporaryDirectory(prefix="dot-server-") as scratch:
        directory = Path(config.get("directory") or scratch)
        configure(config, directory)
        from django.core.management import call_command
        from django.core.wsgi import get_wsgi_application

        call_command("migrate", verbosity=0, interactive=False)
        register(config["clients"])
        urlpatterns[:] = _urlpatterns()
        server = make_server("127.0.0.1", 0, with_stats(get_wsgi_application()),
                             server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        with server:
            print(json.dumps({"base_url": f"http://127.0.0.1:{server.server_port}"}),
                  flush=True)
            # Nobody reads our stderr pipe once we are up: a full pipe would block us.
            log = open(directory / "dot_server.log", "ab")  # noqa: SIM115 (held until exit)
            os.dup2(log.fileno(), 2)
            server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
