"""How a server may have encoded what it echoes back: the decodings of a text.

:class:`~requests_oauthcc.redaction.Redactor` cuts a credential out where it appears in a
form it knows. A server may echo it in a form no list can hold (Go's JSON escapes, numeric
HTML entities, ``\\xHH`` escapes, Latin-1 mojibake, base64 of the whole request, split by a
tag...), so :func:`decoded_views` undoes each such encoding, and each pair of them, and the
redactor withholds a text in which any view shows a credential.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote, unquote_plus

__all__ = ["decoded_views"]

_ESCAPE = re.compile(
    r'\\(?:u([0-9a-fA-F]{4})|u\{([0-9a-fA-F]{1,6})\}|x([0-9a-fA-F]{2})|(["\\/bfnrt]))'
)
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
           "t": "\t"}
_IIS = re.compile(r"%u([0-9a-fA-F]{4})")
_QUOTED_PRINTABLE = re.compile(r"=(?:([0-9A-F]{2})|\r?\n)")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_SPLITTERS = re.compile(r"<[^<>]{0,200}>|[\"']\s*\+\s*[\"']")


def _unescape(text: str) -> str:
    """JSON, JavaScript and Python string escapes: ``\\uXXXX`` (either case, surrogate
    pairs joined), ``\\u{X}``, ``\\xHH``, ``\\n`` and the like."""
    def one(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2) or m.group(3)
        if code is not None:
            return chr(min(int(code, 16), 0x10FFFF))
        return _SIMPLE[m.group(4)]

    return _ESCAPE.sub(one, text).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _mojibake(text: str) -> str:
    """UTF-8 bytes that were read as Latin-1 (a Java servlet's default), read back."""
    return text.encode("latin-1", "ignore").decode("utf-8", "replace")


def _percent_latin1(text: str) -> str:
    """Percent-encoding of Latin-1 bytes, and IIS's ``%uXXXX``."""
    return unquote(_IIS.sub(lambda m: chr(int(m.group(1), 16)), text), encoding="latin-1")


def _quoted_printable(text: str) -> str:
    return _QUOTED_PRINTABLE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "",
                                 text)


def _base64_runs(text: str) -> str:
    """Runs that decode as base64 (standard or URL-safe, padded or not), decoded: a Basic
    credential, or a whole request body, echoed in base64."""
    def one(m: re.Match[str]) -> str:
        run = m.group().rstrip("=")
        run += "=" * (-len(run) % 4)
        try:
            return base64.b64decode(run.replace("-", "+").replace("_", "/")).decode(
                "utf-8", "replace")
        except (binascii.Error, ValueError):
            return m.group()

    return _BASE64_RUN.sub(one, text)


def _hex_runs(text: str) -> str:
    """Runs of hex digits (at least 8 bytes' worth), decoded."""
    return _HEX_RUN.sub(lambda m: bytes.fromhex(m.group()).decode("utf-8", "replace"), text)


def _skeleton(text: str) -> str:
    """The text without what may split an echo: HTML tags, string concatenation, and
    format characters (zero-width space, soft hyphen)."""
    text = _SPLITTERS.sub("", text).replace("\x00", "")  # UTF-16 or -32 read as UTF-8
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


_DECODERS: tuple[Callable[[str], str], ...] = (
    unquote, unquote_plus, _percent_latin1, _unescape, _mojibake, _quoted_printable,
    _base64_runs, _hex_runs, _skeleton,
)


def decoded_views(text: str) -> set[str]:
    """``text`` decoded in each way, and each pair of ways, a server may have encoded an
    echo (percent-encoding in UTF-8 or Latin-1, HTML entities, string escapes, mojibake,
    quoted-printable, base64 and hex runs, split text), and each view NFKC-normalized."""
    from html import unescape

    views = {text}
    for _ in range(2):  # two layers, e.g. percent-encoding inside an HTML page
        views |= {decode(view) for view in list(views) for decode in (*_DECODERS, unescape)}
    views |= {unicodedata.normalize("NFKC", view) for view in list(views)}
    return views
