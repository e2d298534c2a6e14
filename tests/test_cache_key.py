"""cache_key: what names a token in a shared cache; the DPoP key's thumbprint is part of
it, and keys of caches without DPoP are those of earlier versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from requests_oauthcc import ClientCredentialsAuth, DPoPKey, FileTokenCache
from requests_oauthcc.cache_key import cache_key

FIELDS: dict[str, Any] = {
    "token_url": "https://as.example/token", "client_id": "fleet-client",
    "auth_method": "client_secret_basic", "scope": "write read",
    "audience": "https://api.example", "resources": ["https://api.example/v2"],
    "extra_params": [("tenant", "t-1")], "credential": "c" * 64,
}
KEY_BEFORE_DPOP = "oauthcc-c6e9f6eeba537cf8716d5077460c14b23a69d968"
"""``cache_key(**FIELDS)`` as computed before DPoP support (commit 1fa306d)."""
AUTH_KEY_BEFORE_DPOP = "oauthcc-c01d65451c2e3e9f94112c30528322c33bd869a6"
"""The shared key of the auth in :func:`test_non_dpop_auth_key_is_unchanged`, as computed
before DPoP support (commit 1fa306d)."""


def test_cache_key_without_dpop_is_the_key_from_before() -> None:
    """``dpop_jkt=None`` (or left out) gives the key computed before DPoP existed: caches
    filled by earlier versions stay shared with the new one."""
    assert cache_key(**FIELDS) == KEY_BEFORE_DPOP
    assert cache_key(**FIELDS, dpop_jkt=None) == KEY_BEFORE_DPOP


def test_non_dpop_auth_key_is_unchanged(tmp_path: Path) -> None:
    """A ClientCredentialsAuth with no DPoP key shares under the same key as before DPoP
    existed; one with a DPoP key, under another key, one per DPoP key."""
    options: dict[str, Any] = {
        "scope": "write read", "audience": "https://api.example",
        "resource": "https://api.example/v2", "extra_params": {"tenant": "t-1"},
        "cache": FileTokenCache(tmp_path / "tokens"),
    }

    def key_of(**more: Any) -> str:
        auth = ClientCredentialsAuth("https://as.example/token", "fleet-client",
                                     "fleet-secret-Zq8mX4", **options, **more)
        return auth._holder._shared.key  # type: ignore[union-attr]

    assert key_of() == AUTH_KEY_BEFORE_DPOP
    one, other = DPoPKey.generate(), DPoPKey.generate()
    keys = {key_of(), key_of(dpop=one), key_of(dpop=other)}
    assert len(keys) == 3
    assert key_of(dpop=one) == key_of(dpop=DPoPKey(one.key, "ES256"))  # same key: same


@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=64))
def test_cache_key_differs_with_the_dpop_thumbprint(jkt: str, other: str) -> None:
    """Everything else equal, two DPoP thumbprints give two keys, and neither is the key
    without DPoP."""
    keys = {cache_key(**FIELDS, dpop_jkt=jkt), cache_key(**FIELDS, dpop_jkt=other)}
    assert len(keys) == (1 if jkt == other else 2)
    assert KEY_BEFORE_DPOP not in keys

