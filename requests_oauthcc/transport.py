"""The one way to send a request to the authorization server.

Token requests and metadata requests both go through :func:`exchange`, so the rules every
such request must follow are stated once:

- the https rule, :func:`~requests_oauthcc._urls.sends_in_clear`: a request that would
  cross the network unencrypted is refused (:class:`InsecureTransportError`) unless the
  caller allows it (``insecure_allow_http``);
- no redirect is ever followed: a 3xx is an answer, and the caller refuses it;
- ``verify=session.verify`` is passed explicitly, because requests otherwise lets
  ``REQUESTS_CA_BUNDLE`` override a Session's own setting (psf/requests#3829);
- the body is streamed and read up to a cap (1 MiB by default); a larger one is not read;
- the whole request (connect, TLS handshake, sending, headers, body) ends by a deadline;
- an error raised inside requests or urllib3 is handed on with the credentials scrubbed
  from its ``request`` and without the frames of its traceback (see :func:`_hygienic`).

How the deadline is kept
------------------------
requests' ``timeout`` bounds each blocking socket operation, not the request: a server
sending one byte a second never trips a 2-second read timeout, in the headers or in the
body. urllib3's ``Timeout(total=...)`` does not change that: it is turned into one read
timeout when the request has been sent, and every ``recv`` of the headers and the body
gets that value afresh. The options, and why this module takes the last one:

- checking the clock between body chunks: the headers are read inside requests, and one
  buffered read of a chunk spans many ``recv`` calls;
- a connection class whose socket operations get the time left: exact, but it lives in
  the transport adapter, and a ``session=`` given by the user must not be modified (its
  adapters may be the user's own);
- running the request in a worker thread abandoned at the deadline: the thread and its
  connection would linger as long as the server likes;
- **a watchdog** (chosen): the request runs in the calling thread, each socket operation
  limited to the time left when it starts; a short-lived thread wakes at the deadline and
  shuts down (``shutdown(2)``, not ``close``) the socket the calling thread is blocked on,
  which ends the blocked call at once. That socket is found where the thread is blocked:
  its frames, from the innermost up to :func:`exchange`, are those of ``socket.py``,
  ``ssl.py``, ``http.client`` and urllib3, which hold it (``SocketIO``, ``SSLSocket``,
  ``HTTPConnection``, the socket being connected). Nothing is modified, any Session works,
  and nothing is paid unless the deadline passes but one thread start per request.
  An answer that was interrupted is discarded even if it looks complete (a cut header
  block or a body delimited by the end of the connection does).

Limits: name resolution (``getaddrinfo``) cannot be interrupted, and an adapter doing its
I/O outside Python sockets is bounded only by the per-operation timeouts.
"""

from __future__ import annotations

import http.client
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType
from typing import Any

import requests
import urllib3
from requests.cookies import extract_cookies_to_jar
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict

from ._urls import sends_in_clear
from .certificates import Cert
from .errors import InsecureTransportError, OAuthError
from .redaction import (
    NO_SECRETS,
    Redactor,
    SensitiveBytes,
    SensitiveText,
    exception_chain,
    server_text,
    without_frames,
)

__all__ = [
    "MAX_BODY_BYTES",
    "Timeout",
    "Watchdog",
    "exchange",
    "total_seconds",
    "without_credentials",
]

MAX_BODY_BYTES = 1 << 20
"""An answer larger than this (1 MiB, after decompression) is not read."""

Timeout = float | tuple[float, float]
"""Seconds for the whole request, or ``(connect, read)``: then connect + read in all."""

Failure = Callable[[str, requests.Response | None], OAuthError]
"""Builds the caller's typed error from a message and the response, if one came."""

_TRANSPORT_ERRORS = (
    requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError,
)
"""What requests and urllib3 raise when the exchange itself fails."""

_INTERRUPT_AGAIN = 0.05
"""Seconds between interruptions once the deadline has passed (an adapter may retry)."""


def total_seconds(timeout: Timeout) -> float:
    """The whole-request bound of ``timeout``: itself, or connect + read for a tuple."""
    return float(sum(timeout)) if isinstance(timeout, tuple) else float(timeout)


_CREDENTIAL_HEADERS = frozenset({"authorization", "dpop"})
"""Headers that carry a credential: client authentication, and a DPoP proof (RFC 9449)."""


def without_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A copy of ``request`` without its ``Authorization`` and ``DPoP`` headers, its other
    header values plain strings again (they were sent as ``SensitiveText``)."""
    copy = request.copy()
    copy.headers = CaseInsensitiveDict(
        {name: str(value) for name, value in request.headers.items()
         if name.lower() not in _CREDENTIAL_HEADERS})
    return copy


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: Timeout,
    fail: Failure,
    data: str | None = None,
    deadline: float | None = None,
    cert: Cert | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    allow_http: bool = False,
    scrub: Callable[[requests.PreparedRequest], requests.PreparedRequest] = without_credentials,
    redact: Redactor = NO_SECRETS,
) -> tuple[requests.Response, bytes | None]:
    """Send one request to the authorization server; ``(response, body)``.

    ``body`` is ``None`` when the answer is larger than ``max_body_bytes``: it is not read
    (the caller refuses it with its own error). The response is closed; ``response.request``
    is ``scrub(request)``, and ``response.content`` is the body read.

    ``headers`` are set on the request whatever the Session holds, and keep ``~/.netrc``
    out; they may carry credentials, so they are held as
    :class:`~requests_oauthcc.redaction.SensitiveText` (no frame local shows them).
    ``timeout`` (seconds, or ``(connect, read)``) bounds the whole request (see the module
    docstring); ``deadline`` (a :func:`time.monotonic` value) ends it sooner.
    ``cert``: a client certificate, as requests takes it. ``allow_http``: skip the https
    rule.
    ``redact`` cleans the text of errors from requests before it goes into a message.

    Raises :class:`InsecureTransportError`, or ``fail(message, response)`` (chained to the
    error from requests, if any) when the server cannot be reached, breaks off its answer
    or does not complete it in time.
    """
    headers = {name: SensitiveText(value) for name, value in headers.items()}
    if not allow_http and sends_in_clear(url, session):
        raise InsecureTransportError(
            f"refusing to send a request to {url} over plain http: it would cross the "
            "network in the clear. Use https (or insecure_allow_http=True, for test rigs only)"
        )
    started = time.monotonic()
    end = started + total_seconds(timeout)
    if deadline is not None:
        end = min(end, deadline)
    allowed = end - started
    if allowed <= 0:
        raise fail(f"no time left to ask {url}: the retry deadline has passed", None)
    response: requests.Response | None = None
    body: bytes | None = None
    failure: BaseException | None = None
    with Watchdog(end) as watchdog:
        try:
            response = _send(session, method, url, data=data, headers=headers, cert=cert,
                             timeout=_per_operation(timeout, allowed), scrub=scrub)
            with response:
                body = _read_capped(response, max_body_bytes)
        except _TRANSPORT_ERRORS as exc:
            failure = exc
    # Raised here, outside the except clause, so no __context__ carries frames.
    if failure is not None:
        _hygienic(failure, scrub)
    if watchdog.interrupted:
        raise fail(
            f"Timeout: {url} did not complete its answer within {allowed:.3g}s (the timeout "
            "bounds the whole request: connect, headers and body)", response,
        ) from failure
    if failure is not None:
        what = type(failure).__name__
        if response is None:
            message = f"could not reach {url}: {what} ({_root_cause(failure, redact)})"
        else:
            message = f"{url} broke off its answer: {what}"
        raise fail(message, response) from failure
    assert response is not None
    return response, body


def _send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    data: str | None,
    headers: Mapping[str, str],
    cert: Cert | None,
    timeout: Timeout,
    scrub: Callable[[requests.PreparedRequest], requests.PreparedRequest],
) -> requests.Response:
    """What ``session.request(..., allow_redirects=False, stream=True)`` does, without the
    redirect machinery of ``Session.send``.

    Even when redirects are not followed, ``Session.send`` reads the whole body of a 3xx
    (past any cap), decodes its ``Location`` (a non-UTF-8 one raised ``UnicodeDecodeError``)
    and keeps a copy of the request, credentials included, as ``response.next``. Here the
    Session prepares the request (its headers, cookies, hooks), picks the proxies, TLS
    settings and adapter, and the adapter sends it; the Session's response hooks then see
    the response with its request already scrubbed, and its cookies are kept as usual.
    """
    prepared = session.prepare_request(
        requests.Request(method, url, data=data, auth=_HeaderAuth(headers))
    )
    settings = session.merge_environment_settings(
        prepared.url, {}, True, session.verify, cert  # verify: see psf/requests#3829
    )
    options: dict[str, Any] = {
        "stream": True, "timeout": timeout, "proxies": settings["proxies"],
        "verify": True if settings["verify"] is None else settings["verify"],
        "cert": settings["cert"],
    }
    response = session.get_adapter(prepared.url or url).send(prepared, **options)
    response.request = scrub(prepared)
    extract_cookies_to_jar(  # type: ignore[no-untyped-call]
        session.cookies, response.request, response.raw
    )
    try:
        hooked: requests.Response = dispatch_hook(  # type: ignore[no-untyped-call]
            "response", prepared.hooks, response, **options
        )
    except BaseException:
        response.close()  # a hook raised (raise_for_status, say): give the connection back
        raise
    return hooked


def _per_operation(timeout: Timeout, allowed: float) -> Timeout:
    """requests' per-operation timeout, none of it longer than the time ``allowed``."""
    if isinstance(timeout, tuple):
        return (min(timeout[0], allowed), min(timeout[1], allowed))
    return min(timeout, allowed)


def _read_capped(response: requests.Response, limit: int) -> bytes | None:
    """The body of a streamed response, or ``None`` past ``limit`` bytes (not read on)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    # Kept on the response handed out with errors, so that .text and .json() work.
    response._content = body
    return SensitiveBytes(body)  # it may hold a token: no frame local shows it


def _hygienic(
    error: BaseException, scrub: Callable[[requests.PreparedRequest], requests.PreparedRequest]
) -> None:
    """Make ``error`` and every exception chained to it safe to show with locals.

    Frames inside requests, urllib3 and http.client hold the request's headers and body as
    locals, and error reporters (and ``pytest --showlocals``) print locals: each exception
    keeps its type and message but loses its traceback. A requests error's ``request``
    becomes ``scrub(request)``.
    """
    for exc in exception_chain(without_frames(error)):
        if isinstance(exc, requests.RequestException) and isinstance(
            exc.request, requests.PreparedRequest
        ):
            exc.request = scrub(exc.request)


_OBJECT_REPR = re.compile(r"<[^<>]{0,200} at 0x[0-9a-f]+>: |\w+Pool\([^()]{0,200}\): ")


def _root_cause(error: BaseException, redact: Redactor) -> str:
    """What went wrong at the bottom of ``error``'s chain (``Connection refused``, a name
    that does not resolve), without urllib3's wrappers (``Max retries exceeded``...)."""
    root = error
    while True:
        inner = getattr(root, "reason", None) or root.__cause__ or next(
            (a for a in root.args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException) or inner is root:
            break
        root = inner
    text = _OBJECT_REPR.sub("", str(root)) or type(root).__name__
    return server_text(f"{type(root).__name__}: {text}", redact)


class Watchdog:
    """``with Watchdog(end):`` shuts down the socket the calling thread is blocked on, once
    ``end`` (a :func:`time.monotonic` value) has passed.

    Only sockets held by the frames of calls made inside the ``with`` block (above the
    frame that built the watchdog) are touched. Interrupts again every 50 ms until the
    block ends, in case a client retries on a new connection. ``interrupted`` says whether
    it had to. Used for requests to the authorization server (:func:`exchange`) and for
    shared-cache operations (a Redis that trickles its answer).
    """

    def __init__(self, end: float, frame: FrameType | None = None) -> None:
        self.interrupted = False
        self._end = end
        self._frame: FrameType | None = frame or sys._getframe(1)
        self._thread_id = threading.get_ident()
        self._done = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> Watchdog:
        threading.Thread(target=self._watch, name="requests-oauthcc-deadline",
                         daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done.set()
            self._frame = None

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self._end - time.monotonic())):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                if self._interrupt():
                    self.interrupted = True
            if self._done.wait(_INTERRUPT_AGAIN):
                return

    def _interrupt(self) -> bool:
        """Shut down the sockets of the call in progress; whether one was."""
        frame = sys._current_frames().get(self._thread_id)
        found: dict[int, socket.socket] = {}
        while frame is not None and frame is not self._frame:
            for value in list(frame.f_locals.values()):
                sock = _socket_in(value)
                if sock is not None:
                    found[id(sock)] = sock
            frame = frame.f_back
        if frame is None:  # not inside the exchange any more
            return False
        interrupted = False
        for sock in found.values():
            try:
                # The OS-level shutdown, also for an SSLSocket (whose own shutdown would
                # drop its TLS state under the reading thread's feet).
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                continue  # not connected (yet), or already closed
            interrupted = True
        return interrupted


def _socket_in(value: object) -> socket.socket | None:
    """The socket ``value`` is or reads from, for the objects blocking calls run in."""
    if isinstance(value, socket.socket):
        return value
    inner: Any = None
    if isinstance(value, socket.SocketIO):  # what http.client reads headers and bodies from
        inner = getattr(value, "_sock", None)
    elif isinstance(value, http.client.HTTPConnection):  # urllib3's connections too
        inner = getattr(value, "sock", None)
    return inner if isinstance(inner, socket.socket) else None


class _HeaderAuth(requests.auth.AuthBase):
    """Sets the given headers last; being an auth, it also keeps ``~/.netrc`` out."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update(self._headers)
        return r

    def __repr__(self) -> str:
        return f"_HeaderAuth({sorted(self._headers)!r})"
