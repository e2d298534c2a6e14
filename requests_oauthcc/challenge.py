"""Reading an API's ``WWW-Authenticate`` challenges (RFC 9110 §11.6.1, RFC 6750 §3)."""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["Challenges", "challenge_errors", "read_challenges"]

# One auth-param: a name, "=", and a token or a quoted string (escapes allowed). Matching
# whole quoted strings means text inside an error_description is never read as a parameter.
# A name starts only where no name character precedes it, so a long run of them is scanned
# once, not from each of its positions (linear time on any header).
_TCHAR = r"!#$%&'*+.^_`|~0-9A-Za-z-"
_PARAM = re.compile(rf'(?<![{_TCHAR}])([{_TCHAR}]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)')
MAX_CHALLENGE_CHARS = 8192
"""Only this much of a header is read: challenges are short, and the scan stays cheap."""


class Challenges(NamedTuple):
    """What the challenges of one ``WWW-Authenticate`` value say about the token.

    ``errors``: the ``error`` codes of every challenge, in lower case; ``scope``: the first
    ``scope`` parameter (RFC 6750 §3: the scope the resource needs), or ``None``.
    """

    errors: frozenset[str]
    scope: str | None


def read_challenges(header: str) -> Challenges:
    """The ``error`` codes and the ``scope`` of the challenges in a ``WWW-Authenticate``
    value (RFC 6750 §3; several challenges may share the header).

    ``Bearer error="insufficient_scope", scope="admin"`` gives
    ``Challenges({"insufficient_scope"}, "admin")``. A malformed header gives what could be
    read; only its first :data:`MAX_CHALLENGE_CHARS` characters are.
    """
    errors = set()
    scope = None
    for match in _PARAM.finditer(header[:MAX_CHALLENGE_CHARS]):
        name = match.group(1).lower()
        if name not in ("error", "scope"):
            continue
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name == "error":
            errors.add(value.lower())
        elif scope is None:
            scope = value
    return Challenges(frozenset(errors), scope)


def challenge_errors(header: str) -> frozenset[str]:
    """The ``error`` codes of every challenge in a ``WWW-Authenticate`` value, in lower case
    (:func:`read_challenges`)."""
    return read_challenges(header).errors
