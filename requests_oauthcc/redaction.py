"""Keeping credentials out of every text a person or a program might read.

One module, one rule: whatever a server sends back and whatever this package holds is
shown only through the functions and types here.

- :class:`Secret` holds a client secret; its ``repr`` and ``str`` show nothing of it.
- :class:`SensitiveText` is a ``str`` handed to requests (a header value, a form body):
  the bytes on the wire are the real ones, its ``repr``/``str``/``format`` are not, so a
  traceback captured with locals (``pytest --showlocals``, error reporters) shows none.
- :class:`Redactor` removes the credentials of one token request from server text, in every
  encoding a client could have sent them in (raw, form-encoded, percent-encoded with either
  hex case, base64 Basic, JSON-escaped, HTML-escaped, NFKC-normalized), and finds them in
  the encodings it cannot cut out: it decodes the text every way a server may have encoded
  an echo (percent-decoding, HTML entities, JSON escapes in either case, NFKC), and text in
  which any decoding shows a credential is withheld whole.
- :func:`server_text` is the one way server-supplied text enters a message or a log:
  redacted first, then stripped of control characters, then checked for encoded
  credentials, then bounded in length.
"""

from __future__ import annotations

import hmac
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, SupportsIndex
from urllib.parse import quote, quote_plus

__all__ = [
    "REDACTED",
    "WITHHELD",
    "Redactor",
    "Secret",
    "SensitiveBytes",
    "SensitiveMapping",
    "SensitiveText",
    "exception_chain",
    "hidden",
    "reveal",
    "server_text",
    "without_frames",
]

REDACTED = "[redacted]"
WITHHELD = "(withheld: it holds a credential in an encoding that cannot be cut out)"
MAX_SERVER_TEXT = 200
"""Characters of server-supplied text (after cleaning) that a message may quote."""

_STRONG = 12
"""Secrets at least this long are redacted wherever they occur, even inside a word."""


class Secret:
    """A credential held in memory: ``repr`` and ``str`` show ``Secret('[redacted]')``.

    ``reveal()`` is the only way to the value. Equality is constant-time. Pickles with its
    value (an auth object sent to a worker process needs it).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8", "surrogatepass"),
                                   other._value.encode("utf-8", "surrogatepass"))

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


def reveal(value: str | Secret) -> str:
    """The plain string of ``value``, a str or a :class:`Secret`."""
    return value.reveal() if isinstance(value, Secret) else value


class SensitiveBytes(bytes):
    """Bytes of a credential on their way to the socket; ``repr`` hides them."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"b'{REDACTED}'"

    __str__ = __repr__


class SensitiveText(str):
    """A ``str`` carrying a credential to requests (header value, form body).

    requests and urllib3 read its characters (``encode``, regex checks, ``len``, and
    ``str()``, which the standard library calls to *use* a value, e.g. ``urlencode``);
    ``repr`` (what tracebacks with locals, debuggers and containers show) and f-strings get
    ``'[redacted]'``. What this package holds is a :class:`Secret`, which hides both.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{REDACTED}'"

    def __format__(self, spec: str) -> str:
        return REDACTED

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return SensitiveBytes(super().encode(encoding, errors))

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        return SensitiveText(super().__getitem__(key))


class SensitiveMapping(dict[str, Any]):
    """A private key in JWK form: a ``dict`` whose ``repr`` shows only its key names."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {REDACTED!r}' for k in self)}}}"


def hidden(value: object) -> Any:
    """``value`` with its ``repr`` hiding the content, if it is text, bytes or a mapping
    (a secret, a PEM private key, a JWK); anything else (a path, a callable) as is."""
    if isinstance(value, str) and not isinstance(value, SensitiveText):
        return SensitiveText(value)
    if isinstance(value, bytes) and not isinstance(value, SensitiveBytes):
        return SensitiveBytes(value)
    if isinstance(value, Mapping) and not isinstance(value, SensitiveMapping):
        return SensitiveMapping(value)
    return value


def _variants(secret: str) -> set[str]:
    """The ways ``secret`` may come back from a server that echoes what it was sent."""
    import html

    forms = {
        secret,
        quote_plus(secret, safe=""),  # application/x-www-form-urlencoded (RFC 6749 App. B)
        quote(secret, safe=""),  # percent-encoding, space as %20
        quote(secret),  # percent-encoding with "/" left alone
        json.dumps(secret)[1:-1],  # JSON string, non-ASCII as \\uXXXX
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON with escaped solidus (PHP)
        html.escape(secret),
        unicodedata.normalize("NFKC", secret),  # an echo normalized on the way
    }
    # What is left of a secret holding control characters once text is cleaned for a
    # message (or an HTML decoder drops them): shown, it gives the secret away all the same.
    for shorn in (_clean(secret), "".join(ch for ch in secret if not _is_control(ch))):
        if len(shorn) >= 4:
            forms.add(shorn)
    return {form for form in forms if form}


def _pattern(form: str, strong: bool) -> str:
    """A regex for one variant: percent-escapes match either hex case; a weak secret
    matches only where it is not glued to a word character or ``-``, so words such as
    ``client_secret`` or ``top-secret`` stay intact."""
    pieces = re.split(r"(%[0-9A-F]{2})", form)
    body = "".join(
        f"%[{p[1]}{p[1].lower()}][{p[2]}{p[2].lower()}]" if i % 2 else re.escape(p)
        for i, p in enumerate(pieces)
    )
    if strong:
        return body
    start = r"(?<![\w-])" if form[0].isalnum() else ""
    end = r"(?![\w-])" if form[-1].isalnum() else ""
    return start + body + end


class Redactor:
    """Replaces the given credentials by ``[redacted]`` in text, in any encoding.

    ``secrets``: the client secret, the Basic header value, assertions, access tokens.
    A secret shorter than 12 characters (``secret``, a test password) is matched only as a
    whole token, so ``client_secret`` or ``secretary`` in a server message stay readable.
    """

    def __init__(self, secrets: Iterable[str | Secret | None]) -> None:
        # Only kept: the patterns are built on first use, as most token requests succeed
        # and never show server text.
        self._secrets = [reveal(item) for item in secrets if item is not None and reveal(item)]

    @cached_property
    def _alternatives(self) -> str | None:
        patterns: dict[str, None] = {}
        for value in self._secrets:
            strong = len(value) >= _STRONG
            for form in sorted(_variants(value), key=len, reverse=True):
                patterns[_pattern(form, strong)] = None
        return "|".join(patterns) or None

    @cached_property
    def _regex(self) -> re.Pattern[str] | None:
        return None if self._alternatives is None else re.compile(self._alternatives)

    @cached_property
    def _folded(self) -> re.Pattern[str] | None:
        alternatives = self._alternatives
        return None if alternatives is None else re.compile(alternatives, re.IGNORECASE)

    def __call__(self, text: str) -> str:
        """``text`` with every credential it holds, in a known encoding, cut out."""
        if self._regex is None:
            return text
        return self._regex.sub(REDACTED, text)

    def hidden_in(self, text: str) -> bool:
        """Whether some decoding of ``text`` (:func:`~requests_oauthcc._echoes.decoded_views`)
        shows a credential, in any letter case: one echoed in an encoding :meth:`__call__`
        does not know, or a short one glued to an escape sequence."""
        regex = self._folded
        if regex is None:
            return False
        from ._echoes import decoded_views  # error paths only: not on import

        return any(regex.search(view) for view in decoded_views(text))

    def __repr__(self) -> str:
        return "Redactor()"


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception linked to it: ``__cause__``, ``__context__``, urllib3's
    ``reason`` and exceptions among the ``args`` (requests wraps urllib3's that way)."""
    seen: dict[int, BaseException] = {}
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen[id(current)] = current
        related = (current.__cause__, current.__context__, getattr(current, "reason", None),
                   *current.args)
        pending.extend(item for item in related if isinstance(item, BaseException))
    return list(seen.values())


def without_frames(exc: BaseException) -> BaseException:
    """``exc`` with the frames of its whole :func:`exception_chain` dropped.

    Frames inside requests, urllib3, http.client and this package's parsers hold request
    bodies, headers and decoded answers as locals, which tracebacks captured with locals
    print. The exceptions themselves (types and messages) stay chained for debugging.
    Returns ``exc`` for ``raise without_frames(exc)``.
    """
    for current in exception_chain(exc):
        current.__traceback__ = None
    return exc


NO_SECRETS = Redactor(())

def _is_control(ch: str) -> bool:
    """A control, format or separator character other than the space: what could forge a
    log line, move a terminal's cursor or reorder text (bidi overrides)."""
    return ch != " " and unicodedata.category(ch)[0] in "CZ"


def _clean(text: str) -> str:
    """``text`` with each :func:`_is_control` character a space, runs of whitespace folded."""
    if not text.isprintable():
        text = "".join(" " if _is_control(ch) else ch for ch in text)
    return " ".join(text.split())  # str.split's whitespace is re's \s


def server_text(
    value: object, redact: Redactor = NO_SECRETS, limit: int = MAX_SERVER_TEXT
) -> str:
    """Text from a server, safe to put in a message or a log record.

    Redacted first (so a secret holding whitespace is still found), then every control or
    format character (newlines, terminal escapes, bidi overrides) becomes a space and runs
    of whitespace fold to one; then, if any decoding of what may be shown holds a
    credential (:meth:`Redactor.hidden_in`), the text is withheld whole (:data:`WITHHELD`);
    else it is cut to ``limit`` characters.
    """
    raw = redact(value if isinstance(value, str) else str(value))
    text = _clean(raw)
    # Only the start can be shown; a credential must not straddle the cut, so the window
    # checked is four times what is shown (redaction above shortened nothing further on).
    # Before cleaning too: a zero-width space inside an echo becomes a space when cleaned.
    window = 4 * limit + 64
    if redact.hidden_in(text[:window]) or redact.hidden_in(raw[:window]):
        return WITHHELD
    if len(text) > limit:
        text = text[:limit] + "..."
    return text
