"""The Token value and its expiry arithmetic."""

from __future__ import annotations

import dataclasses
import math

import pytest

from requests_oauthcc import Token


def test_authorization_header_is_always_bearer() -> None:
    """The header uses the canonical 'Bearer' whatever case the server used."""
    token = Token("abc", token_type="bearer")
    assert token.authorization == "Bearer abc"


def test_repr_hides_the_access_token_and_raw_fields() -> None:
    """repr shows type, scope and times but never the token or raw response fields."""
    token = Token("s3cr3t-token", scope="read", raw={"refresh_token": "r3fr3sh"})
    text = repr(token)
    assert "s3cr3t-token" not in text and "r3fr3sh" not in text
    assert "scope='read'" in text


def test_token_is_immutable_and_replace_keeps_header_in_step() -> None:
    """Tokens are frozen (dataclasses.FrozenInstanceError, as when Token was a dataclass);
    replace() builds a new one with its own header."""
    token = Token("one")
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.access_token = "two"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del token.scope
    with pytest.raises(AttributeError):
        token.anything = 1
    assert token.replace(access_token="two").authorization == "Bearer two"
    assert token.replace(token_type="DPoP").dpop


def test_tokens_compare_hash_copy_and_pickle_by_value() -> None:
    """Equality and hash cover every field but raw (refresh_in included); copies and
    pickles are equal tokens with the same header."""
    import copy
    import pickle

    token = Token("one", scope="read", issued_at=1.0, expires_at=61.0, raw={"x": 1},
                  refresh_in=30.0)
    same = Token("one", scope="read", issued_at=1.0, expires_at=61.0, refresh_in=30.0)
    assert token == same and hash(token) == hash(same) and token.raw != same.raw
    assert token != same.replace(refresh_in=None) and token != same.replace(expires_at=62.0)
    assert token != ("one", "Bearer")
    for copied in (copy.copy(token), copy.deepcopy(token),
                   pickle.loads(pickle.dumps(token))):
        assert copied == token and copied.raw == {"x": 1}
        assert copied.authorization == "Bearer one"
    assert "refresh_in=30.0" in repr(token) and "one" not in repr(token)


def test_refresh_at_uses_the_leeway_for_long_lived_tokens() -> None:
    """A one-hour token is refreshed `leeway` seconds before expiry."""
    token = Token("t", issued_at=100.0, expires_at=3700.0)
    assert token.refresh_at(30.0) == 3670.0
    assert token.lifetime == 3600.0


def test_refresh_at_keeps_short_tokens_for_most_of_their_life() -> None:
    """A token shorter-lived than the leeway is reused for 90% of its life, not refetched."""
    token = Token("t", issued_at=100.0, expires_at=110.0)
    assert token.refresh_at(30.0) == 109.0
    assert Token("t", issued_at=0.0, expires_at=200.0).refresh_at(30.0) == 180.0
    assert Token("t", issued_at=0.0, expires_at=3600.0).refresh_at(30.0) == 3570.0


def test_token_without_expiry_never_needs_refresh() -> None:
    """Unknown lifetime means: use until the server rejects it."""
    token = Token("t", issued_at=5.0)
    assert token.refresh_at(30.0) == math.inf
    assert not token.is_expired(1e12)
    assert token.expires_in(10.0) is None


def test_expiry_checks() -> None:
    """is_expired and expires_in read the token's absolute expiry."""
    token = Token("t", issued_at=0.0, expires_at=60.0)
    assert token.expires_in(20.0) == 40.0
    assert not token.is_expired(59.9)
    assert token.is_expired(60.0)


def test_secret_and_sensitive_text_show_nothing() -> None:
    """Secret hides its value from repr, str and format; SensitiveText (what requests is
    handed) hides it from repr and format but keeps its characters for the wire."""
    import pickle

    from requests_oauthcc import Secret
    from requests_oauthcc.redaction import SensitiveText

    secret = Secret("hunter2-Zq8")
    for shown in (repr(secret), str(secret), f"{secret}", "%s" % (secret,),  # noqa: UP031
                  repr([secret])):
        assert "hunter2" not in shown
    assert secret.reveal() == "hunter2-Zq8"
    assert secret == Secret("hunter2-Zq8") and secret != Secret("other")
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2-Zq8"
    text = SensitiveText("Bearer tok-Zq8")
    for shown in (repr(text), f"{text}", repr({"Authorization": text}), repr(text.encode()),
                  repr(text[7:])):
        assert "tok-Zq8" not in shown
    assert text.encode() == b"Bearer tok-Zq8" and text == "Bearer tok-Zq8"
    token = Token(access_token="tok-Zq8")
    assert "tok-Zq8" not in repr(token.authorization) and token.authorization.endswith("Zq8")


def test_an_access_token_too_long_for_any_header_is_refused() -> None:
    """The server may not hand out a megabyte 'token' (each later attempt then spent seconds
    building its redactor, past the retry deadline): over 16 KiB is unusable."""
    from requests_oauthcc.token import MAX_TOKEN_CHARS, UnusableToken, checked_fields

    assert checked_fields("a" * MAX_TOKEN_CHARS, "Bearer", None)[0]
    with pytest.raises(UnusableToken, match="longer than 16384"):
        checked_fields("%" * (MAX_TOKEN_CHARS + 1), "Bearer", None)


@pytest.mark.parametrize(
    ("refresh_in", "expected"),
    [(1800, 1800.0), ("1800", 1800.0), (" 900.5 ", 900.5), (0, None), (-5, None),
     ("soon", None), (True, None), (None, None), ([1], None), (10**400, None),
     ("nan", None), ("inf", None)],
)
def test_refresh_in_is_a_hint_read_leniently(refresh_in: object, expected: float | None) -> None:
    """Microsoft Entra ID's refresh_in (a number or a numeric string) is kept as seconds;
    anything that is not a positive finite number is ignored, never refusing the token."""
    from requests_oauthcc.response import parse_token_response

    token = parse_token_response({"access_token": "a", "expires_in": 3600,
                                  "refresh_in": refresh_in}, issued_at=100.0)
    assert token.refresh_in == expected
    assert token.refresh_at(30) == (3670.0 if expected is None else 100.0 + expected)


def test_refresh_in_never_delays_a_refresh_and_crosses_a_shared_cache() -> None:
    """A hint later than the usual refresh time changes nothing; without a lifetime the
    hint alone sets it; the hint survives a shared cache's record."""
    from requests_oauthcc.token import token_from_record, token_to_record

    late = Token("a", issued_at=0.0, expires_at=100.0, refresh_in=95.0)
    assert late.refresh_at(30) == 90.0
    assert Token("a", issued_at=0.0, refresh_in=40.0).refresh_at(30) == 40.0
    early = Token("a", issued_at=10.0, expires_at=110.0, refresh_in=50.0)
    copied = token_from_record(token_to_record(early, 20.0, 1000.0), 500.0, 1000.0)
    assert copied.refresh_in == 50.0 and copied.refresh_at(30) == copied.issued_at + 50.0
