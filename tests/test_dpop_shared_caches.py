"""DPoP keys and shared caches, with real processes: a fleet sharing one key shares its
tokens, fleets with different keys never see each other's, no private key is ever stored,
and a non-DPoP auth never uses a DPoP-bound entry (RFC 9449 §6: such a token is useless,
or worse, without its private key).

OAuthTestServer binds each token to its proof's key (``IssuedToken.jkt``) and checks
proofs at the resource; the token requests' raw ``DPoP`` headers are also verified here on
their own (signature, ``htm``, ``htu``, the RFC 7638 thumbprint of the embedded key). With
``dpop=False`` it is a server without DPoP support, answering Bearer tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, DPoPKey, TokenCache
from requests_oauthcc.cache import CacheEntry, Lease, fingerprint
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FORK_WARNING, Spec
from .dpop_checks import has_member, leaks, private_material, verified_proof
from .keys import KeyPair, ec_pair, ed25519_pair, rsa_pair
from .workers import make_cache, use_dpop_key

Report = tuple[str | None, str, str, str | None, int | None]
"""What a :func:`~tests.workers.use_dpop_key` process saw: key path, thumbprint,
Authorization header, DPoP proof header, API status."""

pytestmark = pytest.mark.filterwarnings(FORK_WARNING)

_KEY_NAME = re.compile(r"oauthcc-[0-9a-f]{40}")


# -- helpers --------------------------------------------------------------------------------


def server_thumbprints(server: OAuthTestServer) -> list[str]:
    """The thumbprint of the key in each token request's verified DPoP proof, in order."""
    prints = []
    for record in server.token_log:
        [proof] = [v for k, v in record.headers.items() if k.lower() == "dpop"]
        prints.append(verified_proof(proof, "POST", server.token_url))
    return prints


def run_processes(
    server: OAuthTestServer, spec: Spec, key_paths: Sequence[str | None], call_api: bool,
    method: str = "fork", lease_ttl: float = 5.0,
) -> list[Report]:
    """One process per entry of ``key_paths`` (its DPoP key's PEM file, or ``None`` for a
    generated key), started by ``method`` and released together, each with a cache of
    this ``lease_ttl``; their reports."""
    ctx: Any = multiprocessing.get_context(method)
    barrier = ctx.Barrier(len(key_paths))
    results = ctx.Queue()
    workers = [ctx.Process(target=use_dpop_key, args=(
        server.token_url, server.resource_url, spec, path, barrier, results, call_api,
        lease_ttl))
        for path in key_paths]
    for w in workers:
        w.start()
    reports: list[Report] = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    return reports


def write_pem(path: Path, pair: KeyPair) -> str:
    path.write_text(pair.private_pem)
    return str(path)


def make_auth(server: OAuthTestServer, cache: TokenCache,
              dpop: DPoPKey | None = None) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, cache=cache,
                                 dpop=dpop, retries=0)


def shared_key(auth: ClientCredentialsAuth) -> str:
    """The key under which ``auth`` shares its token."""
    return auth._holder._shared.key  # type: ignore[union-attr]


def stored(spec: Spec) -> dict[str, bytes]:
    """Every token entry in the cache, exactly as stored, by cache key."""
    kind, where = spec
    if kind == "file":
        return {p.stem: p.read_bytes() for p in Path(where).glob("*.json")}
    import redis

    client = redis.Redis.from_url(where)
    try:
        values = {}
        for name in client.keys("*:token"):
            value = client.get(name)
            assert isinstance(value, bytes)
            key = _KEY_NAME.search(name.decode() if isinstance(name, bytes) else name)
            assert key is not None
            values[key.group()] = value
        return values
    finally:
        client.close()


def stored_record(spec: Spec, raw: bytes) -> dict[str, Any]:
    """The token record inside one stored entry (see :func:`stored`)."""
    file = spec[0] == "file"
    payload = json.loads(raw)["payload"] if file else raw.decode().partition("\n")[2]
    record: dict[str, Any] = json.loads(payload)
    return record

class RecordingCache:
    """A :class:`TokenCache` noting every key it is asked to read or lease, then asking
    ``inner``."""

    def __init__(self, inner: TokenCache) -> None:
        self.inner = inner
        self.lease_ttl = inner.lease_ttl
        self.asked: list[str] = []

    def get(self, key: str) -> CacheEntry | None:
        self.asked.append(key)
        return self.inner.get(key)

    def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        self.inner.set(key, entry, ttl)

    def delete(self, key: str, fingerprint: str) -> None:
        self.inner.delete(key, fingerprint)

    def lease(self, key: str) -> Lease | None:
        self.asked.append(key)
        return self.inner.lease(key)


@pytest.fixture
def key_files(tmp_path: Path) -> dict[str, tuple[str, DPoPKey]]:
    """Two P-256 keys in PEM files: ``"A"`` and ``"B"`` -> (path, the key loaded here)."""
    files = {}
    for name in ("A", "B"):
        path = write_pem(tmp_path / f"dpop-{name}.pem", ec_pair())
        files[name] = (path, DPoPKey.load(path))
    return files


def check_groups(reports: list[Report], key_files: dict[str, tuple[str, DPoPKey]],
                 server: OAuthTestServer, token_type: str) -> dict[str, str]:
    """Each process used its own key, and one token per key: that key's group's. The
    access token of each group, by group name."""
    names = {path: name for name, (path, _) in key_files.items()}
    tokens: defaultdict[str, set[str]] = defaultdict(set)
    for path, thumbprint, authorization, proof, status in reports:
        assert path is not None
        name = names[path]
        assert thumbprint == key_files[name][1].thumbprint
        scheme, _, token = authorization.partition(" ")
        assert scheme == token_type
        tokens[name].add(token)
        if token_type == "DPoP":  # the request's proof: this process's key, this token
            assert proof is not None
            assert verified_proof(proof, "GET", server.resource_url, token) == thumbprint
        else:  # a Bearer token needs no proof; the API accepted it
            assert proof is None
            assert status == 200
    assert {name: len(t) for name, t in tokens.items()} == {"A": 1, "B": 1}
    by_group = {name: next(iter(t)) for name, t in tokens.items()}
    assert by_group["A"] != by_group["B"]
    issued = server.issued_tokens()
    for name, token in by_group.items():  # the server bound each to that group's key
        assert issued[token].jkt == (key_files[name][1].thumbprint if token_type == "DPoP"
                                     else None)
    return by_group


# -- a fleet per key ----------------------------------------------------------------------


@pytest.mark.parametrize(("token_type", "method"), [("DPoP", "spawn"), ("Bearer", "fork")])
def test_each_key_group_shares_one_token_and_never_the_other_groups(
    server: OAuthTestServer, spec: Spec, key_files: dict[str, tuple[str, DPoPKey]],
    token_type: str, method: str,
) -> None:
    """3 processes with key A and 3 with key B (each loaded from its PEM file), one cache,
    one server, started together: one token request per key, each with a proof of that
    key; A's processes all use A's token with A's proofs, B's B's; the cache holds one
    entry per key. With Bearer answers too: the cache key alone keeps the keys apart."""
    server.token_type, server.dpop = token_type, token_type == "DPoP"
    path_a, path_b = key_files["A"][0], key_files["B"][0]
    reports = run_processes(server, spec, [path_a, path_b] * 3,
                            call_api=token_type == "Bearer", method=method)

    tokens = check_groups(reports, key_files, server, token_type)
    assert server.token_requests == 2
    assert sorted(server_thumbprints(server)) == sorted(
        key.thumbprint for _, key in key_files.values())
    assert sorted(server.access_tokens_issued) == sorted(tokens.values())

    # Which token each key's cache entry holds: an auth with that key, in this process,
    # gets its group's token from the cache; an auth with no DPoP key has another key.
    cache = make_cache(spec)
    keys = {}
    for name, (_, key) in key_files.items():
        auth = make_auth(server, cache, key)
        keys[name] = shared_key(auth)
        prepared = requests.Request("GET", server.resource_url, auth=auth).prepare()
        assert prepared.headers["Authorization"] == f"{token_type} {tokens[name]}"
    assert server.token_requests == 2
    plain_key = shared_key(make_auth(server, cache))
    assert len({keys["A"], keys["B"], plain_key}) == 3
    entries = stored(spec)
    assert set(entries) == {keys["A"], keys["B"]}
    for name, (_, key) in key_files.items():
        record = stored_record(spec, entries[keys[name]])
        assert record["access_token"] == tokens[name]
        assert record["token_type"] == token_type
        assert leaks(entries[keys[name]], key.key) == []


def test_one_token_request_per_key_per_lifetime(
    server: OAuthTestServer, spec: Spec, key_files: dict[str, tuple[str, DPoPKey]]
) -> None:
    """2 s DPoP tokens: a second round of processes after the first tokens are due for
    refresh makes exactly one more token request per key, and shares it per key again."""
    server.token_type = "DPoP"
    server.token_lifetime = 2
    paths = [key_files["A"][0], key_files["B"][0]] * 3
    first = check_groups(run_processes(server, spec, paths, call_api=False), key_files,
                         server, "DPoP")
    first_done = time.monotonic()
    assert server.token_requests == 2
    time.sleep(max(0.0, 2.0 - (time.monotonic() - first_done)))  # refresh at 90% of life
    second = check_groups(run_processes(server, spec, paths, call_api=False), key_files,
                          server, "DPoP")
    assert server.token_requests == 4
    assert set(first.values()).isdisjoint(second.values())
    per_key = Counter(server_thumbprints(server))
    assert per_key == {key.thumbprint: 2 for _, key in key_files.values()}


def test_generated_keys_share_nothing(server: OAuthTestServer, spec: Spec) -> None:
    """Processes that each generate a key (DPoPKey.generate()) on one shared cache make one
    token request each, with their own key, and use only their own token: a generated key
    is per process, so are its tokens (as documented)."""
    server.token_type = "DPoP"
    reports = run_processes(server, spec, [None, None, None], call_api=False)
    thumbprints = {thumbprint for _, thumbprint, _, _, _ in reports}
    tokens = set()
    for _, thumbprint, authorization, proof, _ in reports:
        token = authorization.removeprefix("DPoP ")
        assert proof is not None
        assert verified_proof(proof, "GET", server.resource_url, token) == thumbprint
        tokens.add(token)
    assert len(thumbprints) == 3
    assert len(tokens) == 3
    assert server.token_requests == 3
    assert set(server_thumbprints(server)) == thumbprints
    assert set(server.access_tokens_issued) == tokens
    assert len(stored(spec)) == 3


def test_file_cache_does_not_grow_with_each_generated_key(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """Short-lived processes each generating a DPoP key (a cron job, a CLI run): once their
    tokens have expired (by more than the sweep's grace, ``lease_ttl``), the files of their
    keys do not stay in the cache directory forever; a later process's run leaves the
    directory with its own files only."""
    server.token_type = "DPoP"
    server.token_lifetime = 1
    lease_ttl = 1.0
    spec = ("file", str(tmp_path / "tokens"))
    run_processes(server, spec, [None, None, None], call_api=False, lease_ttl=lease_ttl)
    assert len(stored(spec)) == 3
    time.sleep(1 + lease_ttl + 0.2)  # every token stored so far expired over lease_ttl ago
    [(_, _, authorization, _, _)] = run_processes(server, spec, [None], call_api=False,
                                                  lease_ttl=lease_ttl)
    live = fingerprint(authorization.removeprefix("DPoP "))
    names = {p.name.partition(".")[0] for p in Path(spec[1]).iterdir()}
    assert len(names) == 1, f"files of {len(names)} keys, of which 3 dead"
    [raw] = stored(spec).values()
    assert json.loads(raw)["fingerprint"] == live


# -- what the cache holds -----------------------------------------------------------------


@pytest.mark.parametrize("make_pair", [ec_pair, rsa_pair, ed25519_pair],
                         ids=["ES256", "RS256", "EdDSA"])
def test_cache_entry_holds_no_private_key_material(
    server: OAuthTestServer, spec: Spec, tmp_path: Path,
    make_pair: Callable[[], KeyPair],
) -> None:
    """The stored entry of a DPoP-bound token (file content, redis value) holds the token
    fields only: no JWK ``d`` member, no PEM, none of the private key's numbers or its
    PKCS #8 form, raw or in hex, base64 or base64url."""
    server.token_type = "DPoP"
    pair = make_pair()
    key = DPoPKey.load(write_pem(tmp_path / "dpop.pem", pair))
    auth = make_auth(server, make_cache(spec), key)
    token = auth.fetch_token()
    [raw] = stored(spec).values()
    record = stored_record(spec, raw)
    assert record["access_token"] == token.access_token  # the entry read is the right one
    assert not has_member(json.loads(raw) if spec[0] == "file" else {}, "d")
    assert not has_member(record, "d")
    assert set(record) <= {"access_token", "token_type", "scope", "issued_at", "expires_at",
                           "raw"}
    assert leaks(raw, pair.private) == []
    # The check itself finds each form it looks for.
    jwk = json.dumps(pair.private_jwk()).encode()
    assert leaks(jwk, pair.private)
    assert leaks(pair.private_pem.encode(), pair.private)
    assert leaks(private_material(pair.private)[-1].hex().encode(), pair.private)


# -- DPoP and non-DPoP auths on one cache ---------------------------------------------------


def test_non_dpop_auth_never_reads_a_dpop_entry(
    server: OAuthTestServer, spec: Spec, key_files: dict[str, tuple[str, DPoPKey]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A process with a DPoP key stores a DPoP-bound token; an auth of the same client with
    no DPoP key, on the same cache, never reads that key: it fetches its own token and
    leaves the DPoP entry alone."""
    server.token_type = "DPoP"
    [(_, _, authorization, _, _)] = run_processes(server, spec, [key_files["A"][0]],
                                                  call_api=False)
    dpop_token = authorization.removeprefix("DPoP ")
    dpop_key = shared_key(make_auth(server, make_cache(spec), key_files["A"][1]))
    before = stored(spec)
    assert set(before) == {dpop_key}

    server.token_type, server.dpop = "Bearer", False
    cache = RecordingCache(make_cache(spec))
    auth = make_auth(server, cache)
    assert requests.get(server.resource_url, auth=auth, timeout=10).status_code == 200
    assert auth.token is not None
    assert auth.token.token_type == "Bearer"
    assert auth.token.access_token != dpop_token
    assert server.token_requests == 2
    assert cache.asked and dpop_key not in cache.asked
    assert set(cache.asked) == {shared_key(auth)}
    after = stored(spec)
    assert after[dpop_key] == before[dpop_key]
    assert set(after) == {dpop_key, shared_key(auth)}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("spelling", ["DPoP", "dpop"])
def test_dpop_entry_planted_under_a_non_dpop_key_is_refused(
    server: OAuthTestServer, spec: Spec, key_files: dict[str, tuple[str, DPoPKey]],
    caplog: pytest.LogCaptureFixture, spelling: str,
) -> None:
    """A DPoP-bound token's entry copied (by anyone who can write the cache) under the key
    of an auth with no DPoP key: a logged miss, naming no token; a fresh Bearer token is
    fetched, used and stored in its place."""
    server.token_type = spelling
    cache = make_cache(spec)
    dpop_token = make_auth(server, cache, key_files["A"][1]).fetch_token().access_token
    [entry] = [cache.get(k) for k in stored(spec)]
    assert entry is not None

    server.token_type, server.dpop = "Bearer", False
    auth = make_auth(server, cache)
    plain_key = shared_key(auth)
    cache.set(plain_key, entry, 3600)
    assert stored_record(spec, stored(spec)[plain_key])["token_type"] == spelling
    with caplog.at_level(logging.WARNING, logger="requests_oauthcc"):
        assert requests.get(server.resource_url, auth=auth, timeout=10).status_code == 200
    assert auth.token is not None
    assert auth.token.access_token != dpop_token
    assert auth.token.token_type == "Bearer"
    assert server.token_requests == 2
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(plain_key in m and "treated as a miss" in m and "DPoP tokens need dpop=" in m
               for m in refusals), refusals
    assert dpop_token not in caplog.text
    replaced = cache.get(plain_key)
    assert replaced is not None
    assert replaced.fingerprint == fingerprint(auth.token.access_token)

def test_proof_check_refuses_another_key() -> None:
    """The proof check used above is not vacuous: a proof whose header names another
    key's JWK fails its signature check; an ``ath`` for another token fails too."""
    signer, other = DPoPKey.generate(), DPoPKey.generate()
    proof = str(signer.proof("GET", "https://api.example/x", access_token="token-1"))
    assert verified_proof(proof, "GET", "https://api.example/x", "token-1") == \
        signer.thumbprint
    head, payload, signature = proof.split(".")
    forged_header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    forged_header["jwk"] = dict(other.public_jwk)
    forged = base64.urlsafe_b64encode(json.dumps(forged_header).encode()).rstrip(b"=")
    with pytest.raises(jwt.InvalidSignatureError):
        verified_proof(f"{forged.decode()}.{payload}.{signature}", "GET",
                       "https://api.example/x", "token-1")
    with pytest.raises(AssertionError):
        verified_proof(proof, "GET", "https://api.example/x", "token-2")
