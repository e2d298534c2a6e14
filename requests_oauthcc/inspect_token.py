"""Describing an access token without verifying it: what ``requests-oauthcc inspect`` shows.

A JWT access token (RFC 9068) is shown as its header and claims, with a summary of what
usually explains a refused request: ``exp``, ``iat``/``nbf`` against this host's clock,
``aud``, ``scope``, ``cnf`` (RFC 9449 DPoP, RFC 8705 certificate binding). An encrypted JWT
(JWE) shows its protected header only; anything else is opaque. Nothing is verified: a
forged token is described as readily as a real one.

What is shown never holds the token (nor its signature), not even where the fields of a
``token --json`` document echo it: a token is named by its
:func:`~requests_oauthcc.events.short_fingerprint`, the first :data:`FINGERPRINT_DIGITS` hex
digits of its SHA-256, as events name it. Everything read from the token is
written as JSON with every character outside printable ASCII escaped (no terminal escape or
bidi override gets through), strings cut at :data:`MAX_VALUE_LENGTH` characters and nesting
at :data:`MAX_DEPTH` levels. Stdlib only (the JWT parts are read by
:mod:`~requests_oauthcc._peek`).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping
from typing import Any, TextIO

from ._peek import numeric_date, peek, peek_encrypted
from .events import FINGERPRINT_DIGITS, short_fingerprint
from .redaction import Redactor

__all__ = [
    "MAX_DEPTH",
    "MAX_INPUT_BYTES",
    "MAX_VALUE_LENGTH",
    "UnusableInput",
    "describe",
    "read_input",
    "render_json",
    "render_text",
    "token_from",
]

MAX_INPUT_BYTES = 64 * 1024
"""Input longer than this (bytes) is refused: a token, even a JWT, is a few KiB."""
MAX_VALUE_LENGTH = 512
"""Characters of any one string (claim, header member, key) shown; the rest is cut."""
MAX_DEPTH = 16
"""Levels of nested objects and arrays shown; deeper ones are replaced by a note."""

_SCHEMES = ("bearer", "dpop")
_RESPONSE_FIELDS = ("token_type", "scope", "expires_at")
_SHAPES = ("one token, 'Bearer TOKEN', 'DPoP TOKEN', 'Authorization: Bearer TOKEN' or the "
           "JSON printed by `requests-oauthcc token --json`")


class UnusableInput(ValueError):
    """The input holds no token to describe; the message says why and never quotes it."""


def read_input(stdin: TextIO) -> str:
    """All of ``stdin`` (bytes from its binary buffer when it has one), as text.

    Raises :class:`UnusableInput` for more than :data:`MAX_INPUT_BYTES` bytes (reading
    stops there) or for bytes that are not UTF-8.
    """
    buffer = getattr(stdin, "buffer", None)
    try:
        if buffer is not None:
            data: bytes = buffer.read(MAX_INPUT_BYTES + 1)
            size, text = len(data), data.decode("utf-8")
        else:
            text = stdin.read(MAX_INPUT_BYTES + 1)
            size = len(text.encode("utf-8"))
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise UnusableInput("stdin is not UTF-8 text, so it holds no token") from None
    if size > MAX_INPUT_BYTES:
        raise UnusableInput(f"stdin holds more than {MAX_INPUT_BYTES // 1024} KiB: a token "
                            "is a few KiB at most; give one token")
    return text


def token_from(text: str) -> tuple[str, dict[str, Any] | None]:
    """``(token, response fields)`` read from ``text``, surrounding whitespace ignored: a
    bare token, ``Bearer TOKEN`` / ``DPoP TOKEN`` (RFC 6750 §2.1, RFC 9449 §7.1), either
    after ``Authorization:``, or the JSON object printed by ``requests-oauthcc token
    --json``, whose ``token_type``, ``scope`` and ``expires_at`` are the response fields
    (``None`` for the other shapes; the object's other members are dropped).

    Raises :class:`UnusableInput` when ``text`` is none of these.
    """
    text = text.strip()
    if not text:
        raise UnusableInput("stdin is empty (if a command piped into inspect, it failed: "
                            "see its error above): pipe a token in, e.g. "
                            "`requests-oauthcc token | requests-oauthcc inspect`")
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            raise UnusableInput("stdin starts with '{' but is not a JSON object")
        token = document.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise UnusableInput("the JSON object on stdin has no access_token string")
        try:
            token.encode("utf-8")
        except UnicodeEncodeError:
            raise UnusableInput("the access_token on stdin holds an unpaired surrogate "
                                "(\\ud800-\\udfff), so it is no token") from None
        fields = {name: document[name] for name in _RESPONSE_FIELDS if name in document}
        return token.strip(), fields
    words = re.sub(r"(?i)\Aauthorization[ \t]*:", "", text).split()
    if len(words) == 2 and words[0].lower() in _SCHEMES:
        words = words[1:]
    if not words or (len(words) == 1 and words[0].lower() in _SCHEMES):
        raise UnusableInput("stdin holds no token after 'Authorization:' or the scheme")
    if len(words) > 1:
        raise UnusableInput(f"stdin holds {len(words)} words; expected {_SHAPES}")
    return words[0], None


def describe(token: str, *, now: float, response: Mapping[str, Any] | None = None,
             ) -> dict[str, Any]:
    """What can be read from ``token`` without verifying it, as a JSON-ready dict.

    ``now`` is the wall clock (seconds since the epoch) that ``exp``, ``iat`` and ``nbf``
    are compared with. Members: ``kind`` (``"jws"``, ``"jwe"`` or ``"opaque"``),
    ``verified`` (always false), ``fingerprint``, ``length`` (characters); for a JWS,
    ``header``, ``claims``, ``summary`` and ``notes``; for a JWE, ``header``; for an opaque
    token that looks like a JWT, ``problem`` (what :func:`~requests_oauthcc._peek.peek`
    found wrong); ``token_response`` for the ``response`` fields given. Never raises for
    a token that is text (:func:`token_from` returns no other): the token itself is in no
    member.
    """
    report: dict[str, Any] = {"kind": "opaque", "verified": False,
                              "fingerprint": short_fingerprint(token),
                              "length": len(token)}
    if response is not None:
        # A server may echo the token into its other fields (scope, token_type): cut out
        # before anything is cut short, so that no part of it shows either.
        parts = token.split(".")
        redact = Redactor([token, parts[2] if len(parts) == 3 else None])  # and a signature
        report["token_response"] = _bounded(_redacted(dict(response), redact))
    dots = token.count(".")
    try:
        if dots == 2:
            header, claims = peek(token)
            report.update(kind="jws", header=_bounded(header), claims=_bounded(claims))
            report["summary"], report["notes"] = _summary(header, claims, now)
        elif dots == 4:
            report.update(kind="jwe", header=_bounded(peek_encrypted(token)))
    except ValueError as exc:  # peek's messages never quote the token
        report["problem"] = f"it has the dots of a {'JWT' if dots == 2 else 'JWE'} but {exc}"
    return report


def _redacted(value: Any, redact: Redactor, depth: int = 0) -> Any:
    """``value`` (decoded JSON) with what ``redact`` knows cut out of every string; nesting
    past :data:`MAX_DEPTH` is left as it is, for :func:`_bounded` shows none of it."""
    if isinstance(value, str):
        return redact(value)
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v, redact, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redact, depth + 1) for v in value]
    return value


def _bounded(value: Any, depth: int = 0) -> Any:
    """``value`` (decoded JSON) with long strings cut, deep nesting and non-finite or huge
    numbers replaced by text: what is safe to show whatever a token holds."""
    if isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            return f"[nested deeper than {MAX_DEPTH} levels]"
        if isinstance(value, dict):
            return {_bounded(str(k)): _bounded(v, depth + 1) for k, v in value.items()}
        return [_bounded(v, depth + 1) for v in value]
    return _bounded_scalar(value)


def _bounded_scalar(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
        return f"{value[:MAX_VALUE_LENGTH]}... [cut: {len(value)} characters]"
    if isinstance(value, float) and not math.isfinite(value):
        return f"[{value} as a number]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 40:
        return f"[a number of {len(str(abs(value)))} digits]"
    return value


def _date(value: float) -> str | None:
    try:
        moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds")


def _binding(cnf: Any) -> list[str]:
    """What the ``cnf`` claim (RFC 7800) binds the token to."""
    if not isinstance(cnf, Mapping):
        return []
    found = []
    if "jkt" in cnf:
        found.append("a DPoP key (RFC 9449)")
    if "x5t#S256" in cnf:
        found.append("a client certificate (RFC 8705)")
    if {"jwk", "jwe", "jku", "kid"} & set(cnf):
        found.append("a proof-of-possession key (RFC 7800)")
    return found


def _summary(header: Mapping[str, Any], claims: Mapping[str, Any], now: float,
             ) -> tuple[dict[str, Any], list[str]]:
    summary: dict[str, Any] = {}
    notes: list[str] = []
    if header.get("alg") == "none":
        notes.append("alg none: an unsecured JWT, which anyone could have written")
    for name in ("exp", "iat", "nbf"):
        try:
            seconds = numeric_date(claims, name)
        except ValueError as exc:
            summary[name] = {"problem": str(exc)}
            notes.append(f"{exc}: a server will likely refuse it")
            continue
        if seconds is None:
            continue
        date = _date(seconds)
        offset = None if date is None else round(seconds - now)
        summary[name] = {"value": _bounded(claims[name]), "date": date,
                         "seconds_from_now": offset}
        if offset is None:
            notes.append(f"its {name} claim is not a representable date")
        elif name != "exp" and offset > 0:
            notes.append(f"{name} is {offset} s in the future: a token is refused before it "
                         "is valid; the clocks of this host and the issuer may disagree")
    if "exp" not in claims:
        notes.append("no exp claim: how long it lives is not written in it")
    for name in ("aud", "scope", "scp", "cnf", "iss", "sub", "client_id"):
        if name in claims:
            summary[name] = _bounded(claims[name])
    if "cnf" in claims:
        summary["cnf"] = {"value": summary["cnf"], "bound_to": _binding(claims["cnf"])}
    return summary, notes


def render_json(report: Mapping[str, Any]) -> str:
    """``report`` (from :func:`describe`) as indented JSON, printable ASCII only."""
    return json.dumps(report, indent=2, ensure_ascii=True)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


_TITLES = {
    "jws": "JWT (JWS, RFC 7515), NOT VERIFIED: no signature, issuer or audience checked",
    "jwe": "encrypted JWT (JWE, RFC 7516): its claims cannot be read without the API's key",
    "opaque": "opaque token (not a JWT): only its issuer can tell what it means (RFC 7662)",
}


def render_text(report: Mapping[str, Any]) -> str:
    """``report`` (from :func:`describe`) for a person; printable ASCII and newlines only."""
    kind = report["kind"]
    lines = [_TITLES[kind] if "problem" not in report
             else f"opaque token: {report['problem']}"]
    lines.append(f"fingerprint: {report['fingerprint']} (first {FINGERPRINT_DIGITS} hex "
                 "digits of the token's SHA-256)")
    lines.append(f"length: {report['length']} characters")
    if "token_response" in report:
        fields = ", ".join(f"{k} {_shown(v)}" for k, v in report["token_response"].items())
        lines.append(f"token response: {fields or 'no token_type, scope or expires_at'}")
    if "header" in report:
        title = "protected header" if kind == "jwe" else "header"
        lines += [f"{title} (not verified):", render_json(report["header"])]
    if "claims" in report:
        lines += ["claims (not verified):", render_json(report["claims"])]
    if report.get("summary"):
        lines.append("summary (not verified):")
        for name, value in report["summary"].items():
            lines.append(f"  {name + ':':<10} {_summary_text(name, value)}")
    lines += [f"note: {note}" for note in report.get("notes", ())]
    return "\n".join(lines)


def _summary_text(name: str, value: Any) -> str:
    if name == "cnf":
        bound = " and ".join(value["bound_to"])
        shown = _shown(value["value"])
        return f"{shown}, bound to {bound}" if bound else f"{shown} (no binding known here)"
    if name not in ("exp", "iat", "nbf"):
        return _shown(value)
    if "problem" in value:
        return str(value["problem"])
    offset = value["seconds_from_now"]
    if offset is None:
        return f"{_shown(value['value'])} (beyond the dates this host can show)"
    if name == "exp":
        when = f"in {offset} s" if offset > 0 else f"expired {-offset} s ago"
    else:
        when = f"{-offset} s ago" if offset <= 0 else f"{offset} s in the future"
    return f"{value['date']} ({when})"
