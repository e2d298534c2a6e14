"""TokenRetry: validated fields, bounded backoff, and Retry-After parsing that never raises."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requests_oauthcc import ConfigurationError, TokenRetry
from requests_oauthcc.retry import parse_retry_after


@pytest.mark.parametrize("fields", [
    {"total": -1}, {"total": 1.5}, {"total": True}, {"total": "3"},
    {"backoff_factor": -0.1}, {"backoff_factor": math.nan}, {"backoff_factor": "1"},
    {"backoff_max": math.inf}, {"retry_after_max": -1}, {"retry_after_max": None},
    {"deadline": 0}, {"deadline": -5}, {"deadline": math.inf}, {"deadline": math.nan},
    {"statuses": "503"}, {"statuses": [503, "504"]}, {"statuses": [42]}, {"statuses": 503},
    {"statuses": [[503]]},
])
def test_unusable_fields_are_configuration_errors(fields: dict[str, Any]) -> None:
    """Negative or non-finite seconds, a total that is not an int, statuses that are not
    HTTP statuses: ConfigurationError when the policy is made, not at the first fetch."""
    with pytest.raises(ConfigurationError, match="TokenRetry"):
        TokenRetry(**fields)


def test_usable_fields_are_kept() -> None:
    """Zeros (no backoff, no Retry-After honoured) are fine; statuses become a frozenset."""
    policy = TokenRetry(total=0, backoff_factor=0, backoff_max=0, retry_after_max=0,
                        deadline=0.5, statuses=[503, 429])  # type: ignore[arg-type]
    assert policy.statuses == frozenset({429, 503})


def test_backoff_of_a_late_retry_does_not_overflow() -> None:
    """The 5000th retry waits backoff_max (2.0 ** 4999 would overflow a float)."""
    policy = TokenRetry(total=10_000, backoff_factor=1, backoff_max=2)
    delay = policy.delay(5000)
    assert delay is not None and 1 <= delay <= 2


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("9" * 400, math.inf),
    ("²", None), ("١٢", None), ("-1", None), ("1.5", None), ("", None), ("soon", None),
    ("Mon, 01 Jan 1990 00:00:00 GMT", 0.0),
    ("Wed, 21 Oct 99999999999 07:28:00 GMT", None),
])
def test_retry_after_values(value: str, expected: float | None) -> None:
    """Digits are seconds (ASCII only: '²' is isdigit() but no number); past dates are 0;
    dates out of range and anything else are unusable (None), never an exception."""
    assert parse_retry_after(value) == expected


def test_a_far_date_is_far() -> None:
    """The last representable date is a long wait: more than any retry_after_max."""
    seconds = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT")
    assert seconds is not None and seconds > 1e10
    assert TokenRetry().delay(1, "Fri, 31 Dec 9999 23:59:59 GMT") is None


@given(st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="latin-1")),
    st.from_regex(
        r"\A[A-Za-z]{3}, \d{1,2} [A-Za-z]{3} \d{1,12} \d{2}:\d{2}:\d{2} [A-Z+\-0-9]{1,5}\Z"
    ),
))
def test_retry_after_never_raises(value: str) -> None:
    """Whatever a server sends as Retry-After gives None or seconds >= 0, and the policy's
    delay from it is None or a number: never an exception."""
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0
    delay = TokenRetry(total=1).delay(1, value)
    assert delay is None or delay >= 0
