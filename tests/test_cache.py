"""Cache keys, the in-memory cache, encryption at rest, and sharing between auth objects."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from requests_oauthcc import (
    ClientCredentialsAuth,
    ConfigurationError,
    EncryptedTokenCache,
    MemoryTokenCache,
)
from requests_oauthcc.cache import CacheEntry
from requests_oauthcc.cache_key import cache_key
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET

BASE: dict[str, Any] = {
    "token_url": "https://as/token", "client_id": "client", "auth_method": "client_secret_basic",
    "scope": "read write", "audience": None, "resources": [], "extra_params": [],
    "credential": "fingerprint-1",
}


def key(**changes: Any) -> str:
    return cache_key(**{**BASE, **changes})


def test_key_ignores_scope_and_resource_order() -> None:
    """Scope tokens and resources name the same token in any order."""
    assert key(scope="write  read") == key()
    assert key(resources=["b", "a"]) == key(resources=["a", "b"])


@pytest.mark.parametrize(
    "change",
    [{"token_url": "https://as/other"}, {"client_id": "c2"}, {"auth_method": "private_key_jwt"},
     {"scope": "read"}, {"audience": "aud"}, {"resources": ["https://r/"]},
     {"extra_params": [("tenant", "t")]}, {"credential": "fingerprint-2"}],
)
def test_key_changes_with_everything_that_makes_a_token_different(
    change: dict[str, Any],
) -> None:
    """Any difference in URL, client, method, scope, audience, resource, extras or
    credential: a new key."""
    assert key(**change) != key()


def test_key_reveals_nothing() -> None:
    """The key is a hash: neither the client id nor the URL can be read from it."""
    k = key(client_id="very-identifiable-client")
    assert "identifiable" not in k and "as/token" not in k
    assert k.startswith("oauthcc-") and len(k) == len("oauthcc-") + 40


def test_memory_cache_entries_expire_and_delete_compares() -> None:
    """TTL is honoured; delete only removes the entry holding the given fingerprint."""
    cache = MemoryTokenCache()
    cache.set("k", CacheEntry("fp1", "payload"), 0.05)
    assert cache.get("k") == CacheEntry("fp1", "payload")
    time.sleep(0.06)
    assert cache.get("k") is None
    cache.set("k", CacheEntry("fp2", "payload"), math.inf)
    cache.delete("k", "fp1")
    assert cache.get("k") is not None
    cache.delete("k", "fp2")
    assert cache.get("k") is None


def test_memory_cache_lease_is_exclusive_until_released_or_expired() -> None:
    """A second lease is refused while the first is held; free after release or TTL."""
    cache = MemoryTokenCache(lease_ttl=0.05)
    first = cache.lease("k")
    assert first is not None and cache.lease("k") is None
    first.release()
    assert cache.lease("k") is not None
    time.sleep(0.06)
    assert cache.lease("k") is not None, "an expired lease can be taken over"


def test_auth_objects_sharing_a_cache_share_one_token(server: OAuthTestServer) -> None:
    """Two auth objects with the same key and cache make one token request between them."""
    cache = MemoryTokenCache()
    a = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, scope="b a",
                              cache=cache)
    b = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, scope=["a", "b"],
                              cache=cache)
    other = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, scope="a",
                                  cache=cache)
    for auth in (a, b, a, b):
        assert requests.get(server.resource_url, auth=auth, timeout=5).status_code == 200
    assert server.token_requests == 1
    assert a.token is not None and b.token is not None
    assert a.token.access_token == b.token.access_token
    requests.get(server.resource_url, auth=other, timeout=5)
    assert server.token_requests == 2, "a different scope never sees the shared token"


def test_401_invalidates_the_shared_entry_only_if_it_still_holds_the_rejected_token(
    server: OAuthTestServer,
) -> None:
    """A stale rejection does not delete a newer token another object already stored."""
    cache = MemoryTokenCache()
    a = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=cache)
    b = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=cache)
    requests.get(server.resource_url, auth=a, timeout=5)
    requests.get(server.resource_url, auth=b, timeout=5)
    server.revoke_all()
    assert requests.get(server.resource_url, auth=a, timeout=5).status_code == 200
    assert server.token_requests == 2
    # b still holds the revoked token: its 401 must reuse a's new token, not delete it
    assert requests.get(server.resource_url, auth=b, timeout=5).status_code == 200
    assert server.token_requests == 2


def test_encrypted_cache_stores_no_readable_token(server: OAuthTestServer) -> None:
    """With EncryptedTokenCache the stored payload holds neither token nor its fields."""
    inner = MemoryTokenCache()
    key_bytes = Fernet.generate_key()
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                 cache=EncryptedTokenCache(inner, key_bytes))
    token = auth.fetch_token()
    [(stored, _)] = inner._entries.values()
    assert token.access_token not in stored.payload and "access_token" not in stored.payload
    again = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                  cache=EncryptedTokenCache(inner, [Fernet.generate_key(),
                                                                    key_bytes]))
    requests.get(server.resource_url, auth=again, timeout=5)
    assert server.token_requests == 1, "a rotated key list still decrypts"
    wrong = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET,
                                  cache=EncryptedTokenCache(inner, Fernet.generate_key()))
    requests.get(server.resource_url, auth=wrong, timeout=5)
    assert server.token_requests == 2, "an entry that does not decrypt is a miss"


def test_encrypted_cache_rejects_bad_keys() -> None:
    """A key that is not a Fernet key is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="Fernet"):
        EncryptedTokenCache(MemoryTokenCache(), "not-a-key")
    with pytest.raises(ConfigurationError, match="at least one"):
        EncryptedTokenCache(MemoryTokenCache(), [])
