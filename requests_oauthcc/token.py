"""The access token value and its expiry arithmetic.

Times are absolute readings of one clock (``time.monotonic`` unless a clock is injected),
so a wall-clock jump never makes a token look fresh or stale. ``expires_at`` is ``None``
when the server gave no lifetime: such a token is used until the server rejects it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SHORT_TOKEN_MARGIN", "Token"]

SHORT_TOKEN_MARGIN = 0.1
"""The share of a token's life kept as refresh margin when that is less than the leeway."""


@dataclass(frozen=True)
class Token:
    """An access token as granted by the token endpoint.

    ``access_token``: the credential itself (never shown in ``repr``).
    ``token_type``: as the server spelled it; the header sent is always ``Bearer``.
    ``scope``: the granted scope, or the requested one when the server did not say.
    ``issued_at`` / ``expires_at``: readings of the auth object's clock; ``expires_at``
    is ``None`` when no lifetime is known.
    ``raw``: every field of the token response (may hold other credentials; not shown).
    """

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    scope: str | None = None
    issued_at: float = 0.0
    expires_at: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    authorization: str = field(init=False, repr=False, compare=False)
    """The ``Authorization`` header value, built once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "authorization", "Bearer " + self.access_token)

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
        margin also covers that request's round trip. Infinite when no lifetime is known.
        """
        if self.expires_at is None:
            return math.inf
        lifetime = self.expires_at - self.issued_at
        return self.expires_at - min(leeway, lifetime * SHORT_TOKEN_MARGIN)


def token_to_record(token: Token, now: float, wall_now: float) -> dict[str, Any]:
    """A JSON-able form of ``token`` for other processes: times become wall-clock times.

    ``now`` is the reading of the token's own (monotonic) clock at ``wall_now``.
    """
    return {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "scope": token.scope,
        "issued_at": wall_now - (now - token.issued_at),
        "expires_at": None if token.expires_at is None else wall_now + (token.expires_at - now),
        "raw": dict(token.raw),
    }


def token_from_record(record: Mapping[str, Any], now: float, wall_now: float) -> Token:
    """The :class:`Token` of a record written by :func:`token_to_record`, on this clock.

    Raises ``KeyError``, ``TypeError`` or ``ValueError`` for a record of another shape.
    """
    access_token = record["access_token"]
    issued_at = float(record["issued_at"])
    expires_at = record["expires_at"]
    if not isinstance(access_token, str) or not access_token:
        raise ValueError("access_token")
    return Token(
        access_token=access_token,
        token_type=str(record.get("token_type") or "Bearer"),
        scope=record.get("scope"),
        issued_at=now - (wall_now - issued_at),
        expires_at=None if expires_at is None else now + (float(expires_at) - wall_now),
        raw=dict(record.get("raw") or {}),
    )
