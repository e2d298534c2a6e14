"""Reading a JWT's header and claims without verifying it: to know when a client assertion
from the platform expires (RFC 7519 §4.1.4 ``exp``), never to trust what it says.

Stdlib only: a Kubernetes or Entra ID token file is sent as it is, with no need for PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

from .token import as_float

__all__ = ["MAX_JWT_LENGTH", "expires_at", "numeric_date", "peek", "peek_encrypted"]

MAX_JWT_LENGTH = 16 * 1024
"""A JWT longer than this (characters) is refused unread: platform tokens are a few KiB."""


def _segment(text: str, what: str) -> Mapping[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"its {what} is not a base64url-encoded JSON object")
    return value


def peek(token: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """``(header, claims)`` of the JWS compact serialization ``token`` (RFC 7515 §7.1),
    not verified.

    Raises :class:`ValueError` saying what is wrong with it; the message never quotes it.
    """
    if not isinstance(token, str) or len(token) > MAX_JWT_LENGTH:
        raise ValueError(f"it is not a JWT of at most {MAX_JWT_LENGTH} characters")
    # Only the header and the payload are kept: no local of a frame left in a traceback
    # (a payload that is not JSON) holds the signature, which makes the token usable.
    header, payload = token.split(".", 2)[:2] if token.count(".") == 2 else ("", "")
    if not header or not payload or not token.isascii():
        raise ValueError("it is not a JWT (three base64url parts joined by dots)")
    return _segment(header, "header"), _segment(payload, "payload")


def peek_encrypted(token: str) -> Mapping[str, Any]:
    """The protected header of the JWE compact serialization ``token`` (RFC 7516 §7.1):
    the one part readable without the decryption key; not verified.

    Raises :class:`ValueError` saying what is wrong with it; the message never quotes it.
    """
    if not isinstance(token, str) or len(token) > MAX_JWT_LENGTH:
        raise ValueError(f"it is not a JWT of at most {MAX_JWT_LENGTH} characters")
    header = token.split(".", 1)[0] if token.count(".") == 4 else ""
    if not header or not token.isascii():
        raise ValueError("it is not a JWE (five base64url parts joined by dots)")
    return _segment(header, "header")


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """The claim ``name`` (``exp``, ``iat``) in seconds since the epoch, or ``None`` when
    there is none.

    Raises :class:`ValueError` for a value that is not a finite number (RFC 7519 §2
    NumericDate), an integer too large for a float included (JSON allows any).
    """
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"its {name} claim is not a number of seconds")
    seconds = as_float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"its {name} claim is not a number of seconds")
    return seconds


def expires_at(claims: Mapping[str, Any]) -> float | None:
    """The ``exp`` claim in seconds since the epoch, or ``None`` when there is none.

    Raises :class:`ValueError` for an ``exp`` that is not a finite number (RFC 7519 §2
    NumericDate).
    """
    return numeric_date(claims, "exp")
