"""Preparing a request to be sent again after a 401: releasing the 401 without reading
more than a bounded amount of it, and rewinding the request body.
"""

from __future__ import annotations

from typing import Any, Final

import requests
import urllib3
from requests.exceptions import UnrewindableBodyError
from requests.utils import rewind_body

__all__ = ["MAX_401_BODY_BYTES", "discard_body", "rewind"]

MAX_401_BODY_BYTES: Final = 64 * 1024
"""At most this much of a 401's body is read before the retry (64 KiB)."""


def discard_body(r: requests.Response) -> None:
    """Release a 401 before the retry without reading more than ``MAX_401_BODY_BYTES``.

    A body that ends within the bound is read (not decoded) and dropped, so the connection
    goes back to the pool; a longer one, declared (``Content-Length``) or found, is not
    read further and its connection is closed instead, so an endless or huge body costs
    neither time nor memory. The 401 (in ``history``) keeps the body read, uncompressed
    bodies only; otherwise its ``content`` is empty.
    """
    if r._content_consumed or r.raw is None:  # type: ignore[attr-defined]
        r.close()
        return
    declared = r.headers.get("Content-Length", "").strip()
    chunks: list[bytes] = []
    finished = False
    if not (declared.isdigit() and int(declared) > MAX_401_BODY_BYTES):
        size = 0
        try:
            while size <= MAX_401_BODY_BYTES:
                chunk = _read_raw(r.raw, MAX_401_BODY_BYTES + 1 - size)
                if not chunk:
                    finished = True
                    break
                chunks.append(chunk)
                size += len(chunk)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError, ValueError):
            finished = False
    encoded = r.headers.get("Content-Encoding", "identity").strip().lower() != "identity"
    if finished:
        r._content_consumed = True  # type: ignore[attr-defined]
    r.close()  # unconsumed: closes the connection; consumed: returns it to the pool
    r._content = b"" if encoded or not finished else b"".join(chunks)
    r._content_consumed = True  # type: ignore[attr-defined]


def _read_raw(raw: Any, amount: int) -> bytes:
    """Up to ``amount`` bytes of the body as sent (compressed bodies stay compressed)."""
    read: Any = raw.read
    if isinstance(raw, _URLLIB3_RESPONSE):
        return bytes(read(amount, decode_content=False))
    return bytes(read(amount) or b"")  # another adapter's file-like body


_URLLIB3_RESPONSE: tuple[type, ...] = (
    getattr(urllib3.response, "BaseHTTPResponse", urllib3.response.HTTPResponse),
)


def rewind(request: requests.PreparedRequest) -> bool:
    """Make the body ready to be sent again; ``False`` if it cannot be.

    A body sent from memory is sent again as it is: text, and any bytes-like object
    without ``read`` (bytes, bytearray, memoryview, array), as urllib3 sends those whole.
    A file-like body is rewound to the position requests recorded when it prepared the
    request (``rewind_body``); a generator, or a stream whose position could not be
    read, cannot be replayed.
    """
    body: Any = request.body  # typed bytes | str | None, but files and generators are sent too
    if body is None or isinstance(body, (bytes, str)):
        return True
    if not hasattr(body, "read"):
        try:
            memoryview(body)
        except TypeError:
            return False  # an iterable of chunks: consumed by the first attempt
        return True
    try:
        rewind_body(request)
    except (UnrewindableBodyError, OSError, ValueError):
        return False
    return True


