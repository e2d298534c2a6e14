"""Reading an API's ``WWW-Authenticate`` challenges (RFC 9110 §11.6.1, RFC 6750 §3)."""

from __future__ import annotations

import re

__all__ = ["challenge_errors"]

# One auth-param: a name, "=", and a token or a quoted string (escapes allowed). Matching
# whole quoted strings means text inside an error_description is never read as a parameter.
# A name starts only where no name character precedes it, so a long run of them is scanned
# once, not from each of its positions (linear time on any header).
_TCHAR = r"!#$%&'*+.^_`|~0-9A-Za-z-"
_PARAM = re.compile(rf'(?<![{_TCHAR}])([{_TCHAR}]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)')
MAX_CHALLENGE_CHARS = 8192
"""Only this much of a header is read: challenges are short, and the scan stays cheap."""


def challenge_errors(header: str) -> frozenset[str]:
    """The ``error`` codes of every challenge in a ``WWW-Authenticate`` value, in lower case.

    ``Bearer error="insufficient_scope", scope="admin"`` gives ``{"insufficient_scope"}``;
    several challenges may share the header. A malformed header gives what could be read.
    """
    errors = set()
    for match in _PARAM.finditer(header[:MAX_CHALLENGE_CHARS]):
        if match.group(1).lower() == "error":
            value = match.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            errors.add(value.lower())
    return frozenset(errors)
