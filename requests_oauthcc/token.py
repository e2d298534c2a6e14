"""The access token value and its expiry arithmetic.

Times are absolute readings of one clock (``time.monotonic`` unless a clock is injected),
so a wall-clock jump never makes a token look fresh or stale. ``expires_at`` is ``None``
when the server gave no lifetime: such a token is used until the server rejects it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from ._frozen import Frozen
from .redaction import SensitiveText

__all__ = [
    "BEARER_ALIASES",
    "SHORT_TOKEN_MARGIN",
    "Token",
    "UnusableToken",
    "as_float",
    "checked_fields",
    "renewed",
]

SHORT_TOKEN_MARGIN = 0.1
"""The share of a token's life kept as refresh margin when that is less than the leeway."""


class Token(Frozen):
    """An access token as granted by the token endpoint.

    ``access_token``: the credential itself (never shown in ``repr``).
    ``token_type``: as the server spelled it; the header sent is ``DPoP`` for a DPoP-bound
    token (``token_type`` ``DPoP`` in any case, RFC 9449 §5), else ``Bearer``.
    ``scope``: the granted scope, or the requested one when the server did not say.
    ``issued_at`` / ``expires_at``: readings of the auth object's clock; ``expires_at``
    is ``None`` when no lifetime is known.
    ``raw``: every field of the token response (may hold other credentials; not shown;
    ``None`` for an empty mapping).
    ``refresh_in``: seconds from ``issued_at`` after which the server suggests a refresh
    (Microsoft Entra ID's ``refresh_in``), or ``None``.

    Immutable: assigning raises ``dataclasses.FrozenInstanceError``; :meth:`replace`
    makes a changed copy. Equal tokens have equal fields but ``raw``; ``authorization``
    (the ``Authorization`` header value, built once) and ``dpop`` (whether the token is
    DPoP-bound: each request must carry a proof, RFC 9449 §7) are derived.
    """

    __slots__ = ("access_token", "authorization", "dpop", "expires_at", "issued_at", "raw",
                 "refresh_in", "scope", "token_type")
    _fields = ("access_token", "token_type", "scope", "issued_at", "expires_at", "raw",
               "refresh_in")
    _compared = ("access_token", "token_type", "scope", "issued_at", "expires_at",
                 "refresh_in")
    _shown = ("token_type", "scope", "issued_at", "expires_at", "refresh_in")

    access_token: Final[str]
    token_type: Final[str]
    scope: Final[str | None]
    issued_at: Final[float]
    expires_at: Final[float | None]
    raw: Final[Mapping[str, Any]]
    refresh_in: Final[float | None]
    authorization: Final[str]
    """The ``Authorization`` header value, built once."""
    dpop: Final[bool]
    """Whether the token is DPoP-bound: each request must carry a proof (RFC 9449 §7)."""

    def __init__(  # noqa: PLR0917 - positional, as when it was a dataclass
        self,
        access_token: str,
        token_type: str = "Bearer",
        scope: str | None = None,
        issued_at: float = 0.0,
        expires_at: float | None = None,
        raw: Mapping[str, Any] | None = None,
        refresh_in: float | None = None,
    ) -> None:
        dpop = token_type.lower() == "dpop"
        self.access_token = access_token
        self.token_type = token_type
        self.scope = scope
        self.issued_at = issued_at
        self.expires_at = expires_at
        self.raw = {} if raw is None else raw
        self.refresh_in = refresh_in
        self.dpop = dpop
        self.authorization = SensitiveText(("DPoP " if dpop else "Bearer ") + access_token)

    @property
    def lifetime(self) -> float | None:
        """Seconds from issue to expiry, or ``None`` if unknown."""
        return None if self.expires_at is None else self.expires_at - self.issued_at

    def expires_in(self, now: float) -> float | None:
        """Seconds left at clock reading ``now`` (negative once expired), ``None`` if unknown."""
        return None if self.expires_at is None else self.expires_at - now

    def is_expired(self, now: float) -> bool:
        """Whether the server would already refuse this token at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def refresh_at(self, leeway: float) -> float:
        """The clock reading after which a new token should be fetched.

        ``leeway`` seconds before expiry, but never before 90% of the token's life has
        passed, so a token that lives shorter than the leeway is still used for most of
        its life (one token request per lifetime) instead of being fetched again for
        every request. ``issued_at`` is taken before the token request was sent, so the
        margin also covers that request's round trip. A server's ``refresh_in`` hint moves
        it earlier, never later. Infinite when neither a lifetime nor a hint is known.
        """
        hinted = math.inf if self.refresh_in is None else self.issued_at + self.refresh_in
        if self.expires_at is None:
            return hinted
        lifetime = self.expires_at - self.issued_at
        return min(hinted, self.expires_at - min(leeway, lifetime * SHORT_TOKEN_MARGIN))


def renewed(held: Token | None, token: Token) -> Token:
    """``token``, as a refresh answered it, once the held token is taken into account.

    Some gateways keep one token per client and answer every token request with it,
    ``expires_in`` counting down (rounded, and down to ``0``). When ``token`` is the one
    ``held`` already, its expiry is the later of the two estimates (an unknown one does not
    count), so a refresh never shortens the use of a token below what the server allowed.
    Otherwise ``token`` is returned unchanged.
    """
    if held is None or held.access_token != token.access_token:
        return token
    known = [t.expires_at for t in (held, token) if t.expires_at is not None]
    expires_at = max(known) if known else None
    return token if expires_at == token.expires_at else token.replace(expires_at=expires_at)


BEARER_ALIASES = frozenset({"bearer", "bearertoken"})
"""``token_type`` values (compared in lower case) that mean Bearer: ``Bearer`` in any case
(RFC 6749 §7.1, RFC 6750), and ``BearerToken``, which Apigee Edge answers. The header sent
is ``Authorization: Bearer`` whatever the spelling."""
MAX_TOKEN_CHARS = 16 * 1024
"""An access token longer than this is refused: no server takes a header that long (most
stop at 8 KiB), and a huge one would only slow every request and every redaction."""


class UnusableToken(ValueError):
    """A token field breaks a rule of :func:`checked_fields`; the message never holds it."""


def checked_fields(
    access_token: object, token_type: object, scope: object, *, dpop: bool = False
) -> tuple[str, str, str | None]:
    """``(access_token, token_type, scope)`` if a token with these fields may be used.

    The one rule for every token, whether it comes from the token endpoint or from a
    shared cache: ``access_token`` a non-empty string of visible ASCII (it goes in an HTTP
    header, RFC 6750 §2.1) of at most :data:`MAX_TOKEN_CHARS`, ``token_type`` one of
    :data:`BEARER_ALIASES` in any case (RFC 6749 §7.1), or ``DPoP`` when ``dpop`` (the
    client sent a DPoP proof and can make proofs for the token), ``scope`` a string, a list of
    strings (joined with spaces) or ``None``. Raises :class:`UnusableToken` saying which
    rule was broken, never quoting the token.
    """
    if not isinstance(access_token, str) or not access_token:
        raise UnusableToken(f"access_token is {_describe_missing(access_token)}")
    if len(access_token) > MAX_TOKEN_CHARS:
        raise UnusableToken(f"access_token is longer than {MAX_TOKEN_CHARS} characters")
    if not (access_token.isascii() and access_token.isprintable() and " " not in access_token):
        # visible ASCII, \x21-\x7e: what RFC 6750 §2.1's b64token allows, and more
        raise UnusableToken("access_token holds characters that cannot go in an HTTP header")
    if not isinstance(token_type, str) or not token_type.isascii() or not (
            token_type.lower() in BEARER_ALIASES or (dpop and token_type.lower() == "dpop")):
        shown = (repr(token_type[:20]) if isinstance(token_type, str) and
                 token_type.isascii() and token_type.isprintable() else json_kind(token_type))
        dpop_type = isinstance(token_type, str) and token_type.lower() == "dpop"
        raise UnusableToken(
            f"token_type {shown} is not supported; only Bearer tokens are"
            + (" and DPoP tokens are" if dpop else
               " (DPoP tokens need dpop=, a DPoPKey)" if dpop_type else ""))
    if isinstance(scope, list) and all(isinstance(item, str) for item in scope):
        scope = " ".join(scope)
    if scope is not None and not isinstance(scope, str):
        raise UnusableToken(f"scope must be a string, got {json_kind(scope)}")
    return access_token, token_type, scope


def json_kind(value: object) -> str:
    """What kind of JSON value ``value`` is, for messages that must not quote it."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _describe_missing(value: object) -> str:
    if value is None:
        return "missing"
    if value == "":
        return "empty"
    return f"not a string ({json_kind(value)})"


def token_to_record(token: Token, now: float, wall_now: float) -> dict[str, Any]:
    """A JSON-able form of ``token`` for other processes: times become wall-clock times.

    ``now`` is the reading of the token's own (monotonic) clock at ``wall_now``.
    """
    record = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "scope": token.scope,
        "issued_at": wall_now - (now - token.issued_at),
        "expires_at": None if token.expires_at is None else wall_now + (token.expires_at - now),
        "raw": dict(token.raw),
    }
    if token.refresh_in is not None:
        record["refresh_in"] = token.refresh_in
    return record


def token_from_record(
    record: object, now: float, wall_now: float, *, dpop: bool = False
) -> Token:
    """The :class:`Token` of a record written by :func:`token_to_record`, on this clock.

    A record comes from storage other processes (or people) can write, so it is checked
    as strictly as a token response: ``access_token``, ``token_type`` and ``scope`` by
    :func:`checked_fields` (the same rules as a token from the endpoint), ``issued_at`` a
    finite number of seconds (wall clock), ``expires_at`` one too (not before
    ``issued_at``) or ``None``, ``raw`` an object. Raises :class:`UnusableToken` naming
    the broken rule, never quoting the record. ``dpop``: whether this client can use a
    DPoP-bound token.
    """
    if not isinstance(record, Mapping):
        raise UnusableToken(f"the record is {json_kind(record)}, not an object")
    access_token, token_type, scope = checked_fields(
        record.get("access_token"), record.get("token_type", "Bearer"), record.get("scope"),
        dpop=dpop,
    )
    issued_at = _wall_time(record.get("issued_at"), "issued_at")
    expires_at = record.get("expires_at")
    if expires_at is not None:
        expires_at = _wall_time(expires_at, "expires_at")
        if expires_at < issued_at:
            raise UnusableToken("expires_at is before issued_at")
    raw = record.get("raw", {})
    if not isinstance(raw, dict):
        raise UnusableToken(f"raw must be an object, got {json_kind(raw)}")
    return Token(
        access_token=access_token,
        token_type=token_type,
        scope=scope,
        issued_at=now - (wall_now - issued_at),
        expires_at=None if expires_at is None else now + (expires_at - wall_now),
        raw=raw,
        refresh_in=_refresh_hint(record.get("refresh_in")),
    )


def _refresh_hint(value: object) -> float | None:
    """A stored ``refresh_in`` (seconds after issue) as a positive finite number of seconds,
    or ``None``: it is only a hint, so a bad one is ignored rather than refusing the token.
    (A token response's, which may be a numeric string, is read by the rule of
    ``expires_in`` first: :func:`~requests_oauthcc.response.parse_token_response`.)"""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = as_float(value)
    return seconds if 0 < seconds < math.inf else None


def as_float(value: int | float | str) -> float:
    """``float(value)``, with an integer too large for a float as infinity (JSON allows any
    integer): callers then refuse it with the non-finite values."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _wall_time(value: object, name: str) -> float:
    """``value`` as a finite number of seconds, or :class:`UnusableToken`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnusableToken(f"{name} must be a number, got {json_kind(value)}")
    seconds = as_float(value)
    if not math.isfinite(seconds):
        raise UnusableToken(f"{name} must be a finite number")
    return seconds
